package processor

// SVG inputs; the other samples come from internal/testkit.

const svgFile = `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200"><rect width="300" height="200" fill="#36c"/></svg>`

// svgExternalRefs points at a local file and the network; neither may be
// read, and the entity makes librsvg refuse the document.
const svgExternalRefs = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [ <!ENTITY passwd SYSTEM "file:///etc/passwd"> <!ENTITY net SYSTEM "http://127.0.0.1:9/e"> ]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="400" height="200">
  <image xlink:href="file:///etc/passwd" width="100" height="100"/>
  <image href="http://127.0.0.1:9/x.png" x="100" width="100" height="100"/>
  <text x="10" y="150">&passwd;&net;</text>
</svg>`
