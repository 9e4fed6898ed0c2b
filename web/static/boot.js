// Runs without the bundle: if /dist/app.js cannot be loaded (a gateway built
// before `npm run build`), say so instead of showing a page stuck on
// "Connecting". Kept as a file, not inline, so a strict CSP still allows it.
(function () {
  'use strict';
  function missing() {
    if (window.herald) return;
    var banner = document.getElementById('bundle-missing');
    var status = document.getElementById('status');
    if (banner) banner.hidden = false;
    if (status) {
      status.dataset.state = 'offline';
      status.textContent = 'No script';
    }
  }
  var script = document.getElementById('app-script');
  if (script) script.addEventListener('error', missing);
  // Module scripts run before 'load'; if it has not run by then it never will.
  window.addEventListener('load', function () {
    setTimeout(missing, 0);
  });
})();
