// Debian's Chromium for the e2e scripts (never a downloaded one), headless, kept off the
// network: this machine reaches only package registries. Playwright gives it a fresh
// temporary profile. Env: CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core'

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}
