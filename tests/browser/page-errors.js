// Records what reaches a page's error handlers and console.error, for drivers that have no
// error events of their own (WebKit over classic WebDriver, see launch.mjs): uncaught
// exceptions and unhandled rejections go to window.__errors, console.error calls to
// window.__consoleErrors. Test pages load it first (/__errors.js), so errors thrown while the
// page loads are kept; the WebKit driver injects it again after each navigation, which adds
// nothing where it already ran. Where an init script set window.__errors up (Chromium,
// Firefox), only console.error is added.
(function () {
  var w = window;
  if (!w.__errors) {
    w.__errors = [];
    w.addEventListener('error', function (e) { w.__errors.push(String(e.message || e)); });
    w.addEventListener('unhandledrejection', function (e) { w.__errors.push('rejection: ' + String(e.reason)); });
  }
  if (!w.__consoleErrors) {
    w.__consoleErrors = [];
    var log = console.error;
    console.error = function () {
      w.__consoleErrors.push(Array.prototype.map.call(arguments, String).join(' '));
      return log.apply(this, arguments);
    };
  }
})();
