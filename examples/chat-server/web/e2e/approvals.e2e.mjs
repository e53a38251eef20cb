// Several approvals in one program, in headless Chromium with TanStack's own client: the
// model's program asks for one approval after another (or several at once); each must reach
// the page as Approve / Deny buttons in turn, and the program must go on after each click.
// Answers each pending approval in the order given, then waits for the final answer. Prints
// what it saw as one JSON line for the Rust test `examples/tests/chat_e2e.rs`.
//
// Usage: node e2e/approvals.e2e.mjs <base-url> <screenshot.png> <approve|deny>...
// Env:   CHROMIUM (default /usr/bin/chromium)
import { launch } from './browser.mjs'

const [base, screenshot, ...answers] = process.argv.slice(2)
if (!base || !screenshot || answers.length === 0) {
  console.error('usage: approvals.e2e.mjs <base-url> <screenshot.png> <approve|deny>...')
  process.exit(2)
}

const browser = await launch()
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
  const bodies = []
  page.on('request', (r) => {
    if (r.url().endsWith('/api/chat')) bodies.push(r.postDataJSON())
  })
  await page.goto(base)
  await page.getByTestId('info').filter({ hasText: 'driver' }).waitFor({ timeout: 15000 })
  await page.getByTestId('prompt').fill('Mail the reports.')
  await page.getByTestId('send').click()
  const result = { asked: [] }
  for (const answer of answers) {
    const box = page.getByTestId('approval')
    try {
      await box.first().waitFor({ timeout: 20000 })
    } catch {
      result.stalled = await page.locator('[data-event]').evaluateAll((els) => els.map((e) => e.getAttribute('data-event')))
      break
    }
    const input = await page.getByTestId('approval-input').first().textContent()
    result.asked.push({ input, boxes: await box.count() })
    await page.getByTestId(answer).first().click()
    // The answered box goes away before the next one may come.
    await page.waitForFunction(
      (seen) => ![...document.querySelectorAll('[data-testid="approval-input"]')].some((e) => e.textContent === seen),
      input,
      { timeout: 20000 },
    )
  }
  if (!result.stalled) {
    await page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid="assistant-text"]')].some((e) => e.textContent.includes('Done:') && e.textContent.includes('"success"')),
      undefined,
      { timeout: 30000 },
    )
    result.answer = await page.getByTestId('assistant-text').filter({ hasText: 'Done:' }).first().textContent()
  }
  result.boxesAfter = await page.getByTestId('approval').count()
  result.requests = bodies.map((b) => ({ runId: b.runId, parentRunId: b.parentRunId, resume: b.resume }))
  await page.screenshot({ path: screenshot, fullPage: true })
  console.log(JSON.stringify(result))
} finally {
  await browser.close()
}
