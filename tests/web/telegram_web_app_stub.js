// The page tests' stand-in for https://telegram.org/js/telegram-web-app.js (served by the browser's
// route, never fetched). It does what the pages rely on, as Telegram's script documents it: reads the
// launch parameters from the URL fragment (tgWebAppData, tgWebAppThemeParams), sets the theme as
// --tg-theme-<name> CSS variables on <html>, and offers Telegram.WebApp with initData,
// initDataUnsafe.user, MainButton and HapticFeedback. Every call is recorded in window.tgCalls;
// window.tgPressMainButton() presses the main button.
(() => {
  const launch = new URLSearchParams(location.hash.slice(1));
  const initData = launch.get("tgWebAppData") || "";
  const theme = JSON.parse(launch.get("tgWebAppThemeParams") || "{}");
  const user = JSON.parse(new URLSearchParams(initData).get("user") || "null");
  const calls = (window.tgCalls = []);
  for (const [name, value] of Object.entries(theme)) {
    document.documentElement.style.setProperty(`--tg-theme-${name.replace(/_/g, "-")}`, value);
  }
  const pressed = [];
  const MainButton = {
    text: "",
    isVisible: false,
    setText(text) { this.text = text; calls.push(["MainButton.setText", text]); return this; },
    show() { this.isVisible = true; calls.push(["MainButton.show"]); return this; },
    hide() { this.isVisible = false; calls.push(["MainButton.hide"]); return this; },
    onClick(callback) { pressed.push(callback); return this; },
  };
  window.tgPressMainButton = () => pressed.forEach((callback) => callback());
  window.Telegram = {
    WebApp: {
      initData,
      initDataUnsafe: { user },
      themeParams: theme,
      MainButton,
      HapticFeedback: { notificationOccurred(kind) { calls.push(["haptic", kind]); } },
      ready() { calls.push(["ready"]); },
      expand() { calls.push(["expand"]); },
    },
  };
})();
