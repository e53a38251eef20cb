// One live sandbox event, rendered by kind: tool calls with their arguments, results with
// their duration, console lines with their level, errors in red.
export type SandboxEvent = {
  id: number
  eventType: string
  data: Record<string, unknown>
  receivedAt: number
}

export function EventRow({ event }: { event: SandboxEvent }) {
  const { eventType, data } = event
  const kind = eventType.replace(/^code_mode:/, '')
  const fn = String(data.function ?? '')
  let text: string
  switch (kind) {
    case 'execution_started':
      text = `started (${String(data.codeLength ?? '?')} chars of code)`
      break
    case 'console':
      text = `[${String(data.level ?? 'log')}] ${String(data.message ?? '')}`
      break
    case 'external_call':
      text = `→ ${fn}(${JSON.stringify(data.args ?? {})})`
      break
    case 'external_result':
      text = `← ${fn} ${JSON.stringify(data.result)} in ${ms(data.duration)}`
      break
    case 'external_error':
      text = `✗ ${fn}: ${String(data.error ?? '')} after ${ms(data.duration)}`
      break
    case 'approval_requested':
      text = `? ${fn}(${JSON.stringify(data.input ?? {})}) waits for approval`
      break
    case 'approval_resolved':
      text = `? ${fn}: ${String(data.outcome ?? '')}${data.reason ? ` (${String(data.reason)})` : ''}`
      break
    case 'execution_finished':
      text = `${data.success ? 'succeeded' : 'failed'} in ${ms(data.durationMs)}`
      break
    default:
      text = JSON.stringify(data)
  }
  return (
    <li className={`event ${kind}`} data-event={eventType} data-event-id={event.id}>
      <span className="kind">{kind}</span> {text}
    </li>
  )
}

function ms(value: unknown): string {
  return typeof value === 'number' ? `${value.toFixed(1)} ms` : '? ms'
}
