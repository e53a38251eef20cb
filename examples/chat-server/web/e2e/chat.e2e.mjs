// Drives the chat page in headless Chromium (Debian's, never a downloaded one) and prints
// what it observed as one JSON line; the Rust test `examples/tests/chat_e2e.rs` starts the
// servers, runs this script and asserts on that JSON.
//
// Usage: node e2e/chat.e2e.mjs <base-url> <screenshot.png>
// Env:   CHROMIUM (default /usr/bin/chromium)
import { launch } from './browser.mjs'

const [base, screenshot] = process.argv.slice(2)
if (!base || !screenshot) {
  console.error('usage: chat.e2e.mjs <base-url> <screenshot.png>')
  process.exit(2)
}

const browser = await launch()
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
  // Record, in the page, when each event row and each tool result first appears, and under
  // which tool call, so the order the person saw is what is asserted.
  await page.addInitScript(() => {
    // Keyed by the event's id, not the element: React may re-mount a message's rows when the
    // message updates, and a re-mounted row is not a new event.
    const seen = new WeakSet()
    const seenIds = new Set()
    window.__appeared = []
    const record = () => {
      for (const el of document.querySelectorAll('[data-event], [data-testid="tool-result"]')) {
        if (seen.has(el)) continue
        seen.add(el)
        const id = el.getAttribute('data-event-id') ?? (el.closest('[data-tool-call-id]')?.getAttribute('data-tool-call-id') + ':result')
        if (seenIds.has(id)) continue
        seenIds.add(id)
        window.__appeared.push({
          what: el.getAttribute('data-event') ?? 'tool-result',
          toolCallId: el.closest('[data-tool-call-id]')?.getAttribute('data-tool-call-id') ?? null,
          text: el.textContent,
          at: performance.now(),
        })
      }
    }
    new MutationObserver(record).observe(document, { childList: true, subtree: true })
  })
  await page.goto(base)
  await page.getByTestId('info').filter({ hasText: 'driver' }).waitFor({ timeout: 15000 })
  await page.getByTestId('prompt').fill('What is the weather in Oslo, Lima and Rome?')
  await page.getByTestId('send').click()
  const answer = page.getByTestId('assistant-text').filter({ hasText: 'Done:' })
  await answer.first().waitFor({ timeout: 30000 })
  await page.screenshot({ path: screenshot, fullPage: true })
  const result = {
    info: await page.getByTestId('info').textContent(),
    appeared: await page.evaluate(() => window.__appeared),
    answer: await answer.first().textContent(),
    code: await page.locator('[data-tool-call-id] .code').first().textContent(),
  }
  // Two more turns: the client sends the whole history back each time, tool calls included.
  for (const [turn, prompt] of [[2, 'And in Paris?'], [3, 'Thanks, summarise.']]) {
    await page.getByTestId('prompt').fill(prompt)
    await page.getByTestId('send').click()
    await page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="assistant-text"]').length >= n &&
        [...document.querySelectorAll('[data-testid="assistant-text"]')].filter((e) => e.textContent.includes('Done:')).length >= n,
      turn,
      { timeout: 30000 },
    )
  }
  result.answers = await answer.count()
  console.log(JSON.stringify(result))
} finally {
  await browser.close()
}
