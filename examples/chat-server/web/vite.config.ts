// Vite builds the page into `dist/`, which the Rust server serves at `/`.
// `npm run dev` proxies `/api` to a chat-server on port 3000 for live editing.
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true },
  server: { proxy: { '/api': 'http://127.0.0.1:3000' } },
})
