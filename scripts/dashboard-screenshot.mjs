// Takes docs/dashboard.png from a running service, with the same system Chromium the tests use:
//   node scripts/dashboard-screenshot.mjs http://127.0.0.1:3000/ docs/dashboard.png
import { chromium } from 'playwright-core';

const [url = 'http://127.0.0.1:3000/', out = 'docs/dashboard.png'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  await page.waitForSelector('#dashboard:not([hidden]) .mark');
  const failed = page.locator('.mark.failed').last();
  if ((await failed.count()) > 0) await failed.click(); // shows the run detail panel, as an operator would
  await page.screenshot({ path: out, fullPage: true });
  console.log(out);
} finally {
  await browser.close();
}
