// Hostile strings the fake api puts in every tracked field (tests/tests/browser_dashboard_v2.rs
// has the same two). Either one running would set window.__xss or open a dialog.
export const IMG = '<img src=x onerror="window.__xss=1;alert(1)">';
export const SCRIPT = '<script>window.__xss=2;alert(2)</script>';
