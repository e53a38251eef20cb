// A durable approval across a restart of the server, in headless Chromium with TanStack's
// own client: the model's program fetches the weather, then waits for an approval. When the
// Approve / Deny buttons show, this script prints `PENDING` and waits for a line on stdin:
// the Rust test `examples/tests/chat_e2e.rs` kills the server and starts it again meanwhile.
// Then it clicks Approve on the page it had, and waits for the program's result. Prints
// what it saw as one JSON line.
//
// Usage: node e2e/restart.e2e.mjs <base-url> <screenshot.png>
// Env:   CHROMIUM (default /usr/bin/chromium)
import { createInterface } from 'node:readline'
import { launch } from './browser.mjs'

const [base, screenshot] = process.argv.slice(2)
if (!base || !screenshot) {
  console.error('usage: restart.e2e.mjs <base-url> <screenshot.png>')
  process.exit(2)
}
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

const browser = await launch()
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
  await page.goto(base)
  await page.getByTestId('info').filter({ hasText: 'driver' }).waitFor({ timeout: 15000 })
  await page.getByTestId('prompt').fill('Mail the Oslo report to ops.')
  await page.getByTestId('send').click()
  await page.getByTestId('approval').waitFor({ timeout: 30000 })
  await page.getByTestId('send').filter({ hasText: 'Send' }).waitFor({ timeout: 15000 })
  const eventsOf = () => page.locator('[data-tool-call-id="call_ui"] [data-event]').evaluateAll((els) => els.map((e) => e.getAttribute('data-event')))
  const result = { before: await eventsOf(), pendingInput: await page.getByTestId('approval-input').textContent() }
  console.log('PENDING')
  const restarted = await lines.next()
  result.restarted = restarted.value
  await page.getByTestId('approve').click()
  await page.waitForFunction(
    () => [...document.querySelectorAll('[data-testid="assistant-text"]')].some((e) => e.textContent.includes('Done:') && e.textContent.includes('"success"')),
    undefined,
    { timeout: 30000 },
  )
  result.answer = await page.getByTestId('assistant-text').filter({ hasText: 'Done:' }).first().textContent()
  result.after = await eventsOf()
  result.errors = await page.getByTestId('chat-error').count()
  await page.screenshot({ path: screenshot, fullPage: true })
  console.log(JSON.stringify(result))
} finally {
  await browser.close()
  process.exit(0)
}
