// A small MCP server for the code-mode-mcp tests, on the official TypeScript SDK (installed
// with the reference server): tools with names that are not identifiers, a tool whose
// result is an error, one that adds a tool and announces `notifications/tools/list_changed`,
// one that returns the W3C trace context its request carried in `_meta`, with
// `--secret-tool` one that asks for a password, with `--bad-schema`, a tool whose
// inputSchema is not a valid JSON Schema, one whose structuredContent nests `levels` deep,
// one returning its own environment and one echoing its text.
// With `--http` it serves one Streamable HTTP session on 127.0.0.1:$PORT instead of stdio
// (answering with plain JSON bodies instead of event streams with `--json`).
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js'

const tools = [
  { name: 'résumé.v2 tool', description: 'A name with spaces, dots and accents.', inputSchema: { type: 'object', properties: {} } },
  { name: 'fail', description: 'Always an error result.', inputSchema: { type: 'object', properties: {} } },
  { name: 'add_tool', description: 'Adds the tool `added` and announces it.', inputSchema: { type: 'object', properties: {} } },
  { name: 'trace', description: 'Returns the traceparent and tracestate of its request.', inputSchema: { type: 'object', properties: {} } },
  { name: 'deep', description: 'Returns structuredContent nested `levels` arrays deep.', inputSchema: { type: 'object', properties: { levels: { type: 'number' } } } },
  { name: 'env', description: 'Returns the environment the server process was started with.', inputSchema: { type: 'object', properties: {} } },
  { name: 'echo', description: 'Returns its text.', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
]
if (process.argv.includes('--secret-tool')) {
  tools.push({ name: 'login', description: 'Logs in.', inputSchema: { type: 'object', properties: { user: { type: 'string' }, password: { type: 'string' } } } })
}
if (process.argv.includes('--bad-schema')) {
  tools.push({ name: 'broken', description: 'Invalid schema.', inputSchema: { type: 'object', properties: { a: { type: 'nope' } } } })
}

const server = new Server({ name: 'odd', version: '1.0.0' }, { capabilities: { tools: { listChanged: true } } })
server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }))
server.setRequestHandler(CallToolRequestSchema, async (req) => {
  switch (req.params.name) {
    case 'résumé.v2 tool':
      return { content: [{ type: 'text', text: 'odd name works' }] }
    case 'fail':
      return { isError: true, content: [{ type: 'text', text: 'the odd tool failed on purpose' }] }
    case 'add_tool':
      if (!tools.some((t) => t.name === 'added')) {
        tools.push({ name: 'added', description: 'Added at run time.', inputSchema: { type: 'object', properties: {} } })
      }
      await server.sendToolListChanged()
      return { content: [{ type: 'text', text: 'added' }] }
    case 'added':
      return { content: [{ type: 'text', text: 'the added tool runs' }] }
    case 'deep': {
      let value = 1
      for (let i = 0; i < req.params.arguments.levels; i++) value = [value]
      return { content: [{ type: 'text', text: 'deep' }], structuredContent: { value } }
    }
    case 'env':
      return { content: [{ type: 'text', text: JSON.stringify(process.env) }] }
    case 'echo':
      return { content: [{ type: 'text', text: String(req.params.arguments.text) }] }
    case 'login':
      return { content: [{ type: 'text', text: 'logged in' }] }
    case 'trace': {
      const meta = req.params._meta || {}
      return { content: [{ type: 'text', text: JSON.stringify({ traceparent: meta.traceparent ?? null, tracestate: meta.tracestate ?? null }) }] }
    }
    default:
      throw new Error(`unknown tool ${req.params.name}`)
  }
})
if (process.argv.includes('--http')) {
  // One Streamable HTTP session on 127.0.0.1:$PORT (the tests connect one client).
  const { StreamableHTTPServerTransport } = await import('@modelcontextprotocol/sdk/server/streamableHttp.js')
  const { createServer } = await import('node:http')
  const { randomUUID } = await import('node:crypto')
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), enableJsonResponse: process.argv.includes('--json') })
  await server.connect(transport)
  createServer((req, res) => { transport.handleRequest(req, res) }).listen(Number(process.env.PORT), '127.0.0.1')
} else {
  await server.connect(new StdioServerTransport())
}
