// Sign-in page: inside Telegram, sign in with the WebApp's init data instead of a key.
import { api, initData, loadTelegram, pageData } from "tenantry/ui.js";

async function main() {
  await loadTelegram();
  const signed = initData();
  if (!signed) return;
  const notice = document.getElementById("webapp-signin");
  notice.hidden = false;
  try {
    const answer = await api(pageData().webapp_url, { method: "POST", body: { next: pageData().next }, initData: signed });
    // The fragment carries Telegram's launch parameters: the next page loads Telegram's script
    // with them (haptics, theme), as the WebApp it still is.
    location.replace(answer.next + location.hash);
  } catch (problem) {
    notice.textContent = problem.text;
    notice.className = "error";
  }
}

main();
