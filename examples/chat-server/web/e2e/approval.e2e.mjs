// Approvals in the chat page, in headless Chromium: the model's program calls a tool that
// needs approval; the page shows the pending call with its input and Approve / Deny
// buttons (TanStack's approval flow, `addToolApprovalResponse`), and the same execution
// goes on after the click. One turn is approved, the next denied. Prints what it saw as one
// JSON line for the Rust test `examples/tests/chat_e2e.rs`.
//
// Usage: node e2e/approval.e2e.mjs <base-url> <screenshot.png>
// Env:   CHROMIUM (default /usr/bin/chromium)
import { launch } from './browser.mjs'

const [base, screenshot] = process.argv.slice(2)
if (!base || !screenshot) {
  console.error('usage: approval.e2e.mjs <base-url> <screenshot.png>')
  process.exit(2)
}

const browser = await launch()
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
  const requests = []
  page.on('request', (r) => {
    if (r.url().endsWith('/api/chat')) requests.push(r.postDataJSON())
  })
  await page.goto(base)
  await page.getByTestId('info').filter({ hasText: 'driver' }).waitFor({ timeout: 15000 })
  const result = { turns: [] }
  for (const [turn, prompt, answer] of [[1, 'Mail the Oslo report to ops.', 'approve'], [2, 'Mail it again.', 'deny']]) {
    await page.getByTestId('prompt').fill(prompt)
    await page.getByTestId('send').click()
    const box = page.getByTestId('approval')
    await box.waitFor({ timeout: 30000 })
    // The call waits: no result yet, the page is idle (the first response has ended).
    await page.getByTestId('send').filter({ hasText: 'Send' }).waitFor({ timeout: 15000 })
    const seen = {
      pendingText: await box.textContent(),
      pendingInput: await page.getByTestId('approval-input').textContent(),
      resultsWhilePending: await page.getByTestId('tool-result').count(),
      eventsWhilePending: await page.locator('[data-event]').evaluateAll((els) => els.map((e) => e.getAttribute('data-event'))),
    }
    if (turn === 1) await page.screenshot({ path: screenshot, fullPage: true })
    await page.getByTestId(answer).click()
    await page.waitForFunction(
      // The answer streams in pieces: wait for the whole result to be there.
      (n) => [...document.querySelectorAll('[data-testid="assistant-text"]')].filter((e) => e.textContent.includes('Done:') && e.textContent.includes('"success"')).length >= n,
      turn,
      { timeout: 30000 },
    )
    const answers = page.getByTestId('assistant-text').filter({ hasText: 'Done:' })
    seen.answer = await answers.nth(turn - 1).textContent()
    seen.approvalBoxesAfter = await page.getByTestId('approval').count()
    seen.events = await page.locator(`[data-tool-call-id="${turn === 1 ? 'call_ui' : 'call_ui_2'}"] [data-event]`).evaluateAll((els) => els.map((e) => e.textContent))
    result.turns.push(seen)
  }
  result.requests = requests.length
  console.log(JSON.stringify(result))
} finally {
  await browser.close()
}
