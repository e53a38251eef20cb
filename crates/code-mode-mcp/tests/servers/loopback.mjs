// Preloaded (`node --import`) into the MCP servers the tests start over HTTP: every TCP
// listener binds 127.0.0.1, whatever address the server asks for (server-everything
// listens on all interfaces).
import net from 'node:net'

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined
  const first = args[0]
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    return listen.call(this, { port: Number(first), host: '127.0.0.1' }, cb)
  }
  if (first && typeof first === 'object' && first.path === undefined) {
    return listen.call(this, { ...first, host: '127.0.0.1' }, cb)
  }
  return listen.apply(this, args)
}
