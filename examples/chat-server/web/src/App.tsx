// The chat page: TanStack AI's `useChat` talks to the Rust `/api/chat` endpoint unchanged,
// and `onCustomEvent` groups the live `code_mode:*` events under the `execute_typescript`
// call they belong to (by `toolCallId`), so a person sees tool calls, console lines and
// errors while the sandbox runs, before the tool result arrives.
import { useCallback, useEffect, useRef, useState } from 'react'
import { fetchServerSentEvents, useChat } from '@tanstack/ai-react'
import { EventRow, type SandboxEvent } from './EventRow'

type Info = { driver: string; model: string | null }

export function App() {
  const [events, setEvents] = useState<Map<string, Array<SandboxEvent>>>(new Map())
  const [input, setInput] = useState('')
  const [info, setInfo] = useState<Info | null>(null)
  const nextId = useRef(0)

  useEffect(() => {
    fetch('/api/info')
      .then((r) => r.json())
      .then(setInfo)
      .catch(() => setInfo(null))
  }, [])

  const onCustomEvent = useCallback(
    (eventType: string, data: unknown, context: { toolCallId?: string }) => {
      const { toolCallId } = context
      if (!toolCallId) return
      const event: SandboxEvent = {
        id: nextId.current++,
        eventType,
        data: (data ?? {}) as Record<string, unknown>,
        receivedAt: Date.now(),
      }
      setEvents((previous) => {
        const next = new Map(previous)
        next.set(toolCallId, [...(next.get(toolCallId) ?? []), event])
        return next
      })
    },
    [],
  )

  const { messages, sendMessage, isLoading, error, addToolApprovalResponse } = useChat({
    connection: fetchServerSentEvents('/api/chat'),
    onCustomEvent,
  })

  const submit = (e: React.FormEvent) => {
    e.preventDefault()
    const text = input.trim()
    if (!text || isLoading) return
    setInput('')
    void sendMessage(text)
  }

  // Tool results arrive as `tool-result` parts (and as `output` on the call part).
  const resultFor = (toolCallId: string): unknown => {
    for (const message of messages) {
      for (const part of message.parts) {
        if (part.type === 'tool-call' && part.id === toolCallId && part.output !== undefined) {
          return part.output
        }
        if (part.type === 'tool-result' && part.toolCallId === toolCallId) {
          return typeof part.content === 'string' ? tryParse(part.content) : part.content
        }
      }
    }
    return undefined
  }

  return (
    <main>
      <header>
        <h1>code-mode chat</h1>
        <span className="info" data-testid="info">
          {info ? `driver ${info.driver} · model ${info.model ?? 'not configured'}` : ''}
        </span>
      </header>
      <section className="messages" data-testid="messages">
        {messages.map((message) => (
          <article key={message.id} className={`message ${message.role}`} data-role={message.role}>
            {message.parts.map((part, index) => {
              if (part.type === 'text') {
                return (
                  <p key={index} className="text" data-testid={`${message.role}-text`}>
                    {part.content}
                  </p>
                )
              }
              if (part.type === 'tool-call' && part.name === 'execute_typescript') {
                const result = resultFor(part.id)
                return (
                  <div key={part.id} className="tool-call" data-tool-call-id={part.id}>
                    <div className="tool-title">execute_typescript · {part.id}</div>
                    <pre className="code">{codeOf(part.arguments)}</pre>
                    <ol className="events">
                      {(events.get(part.id) ?? []).map((event) => (
                        <EventRow key={event.id} event={event} />
                      ))}
                    </ol>
                    {part.state === 'approval-requested' && part.approval && (
                      <PendingApproval
                        request={pendingRequest(events.get(part.id) ?? [], part.approval.id)}
                        onAnswer={(approved) =>
                          void addToolApprovalResponse({ id: part.approval!.id, approved })
                        }
                      />
                    )}
                    {result !== undefined && (
                      <pre className="result" data-testid="tool-result">
                        {JSON.stringify(result, null, 2)}
                      </pre>
                    )}
                  </div>
                )
              }
              if (part.type === 'tool-call') {
                return (
                  <div key={part.id} className="tool-call" data-tool-call-id={part.id}>
                    <div className="tool-title">{part.name}</div>
                    <pre className="code">{part.arguments}</pre>
                  </div>
                )
              }
              return null
            })}
          </article>
        ))}
        {error && (
          <p className="error" data-testid="chat-error">
            {error.message}
          </p>
        )}
      </section>
      <form onSubmit={submit}>
        <input
          data-testid="prompt"
          value={input}
          placeholder="Ask something the tools can answer…"
          onChange={(e) => setInput(e.target.value)}
        />
        <button type="submit" disabled={isLoading} data-testid="send">
          {isLoading ? 'Running…' : 'Send'}
        </button>
      </form>
    </main>
  )
}

// The program's call waiting for a decision: its function and input come from the
// `code_mode:approval_requested` event with the approval's id.
function pendingRequest(
  events: Array<SandboxEvent>,
  approvalId: string,
): { fn: string; input: unknown } | null {
  const event = events.find(
    (e) => e.eventType === 'code_mode:approval_requested' && e.data.approvalId === approvalId,
  )
  return event ? { fn: String(event.data.function ?? ''), input: event.data.input } : null
}

function PendingApproval({
  request,
  onAnswer,
}: {
  request: { fn: string; input: unknown } | null
  onAnswer: (approved: boolean) => void
}) {
  return (
    <div className="approval" data-testid="approval">
      <div className="approval-title">
        The program wants to call <code>{request?.fn ?? 'a tool'}</code>. Allow it?
      </div>
      <pre className="approval-input" data-testid="approval-input">
        {JSON.stringify(request?.input ?? {}, null, 2)}
      </pre>
      <div className="approval-actions">
        <button type="button" data-testid="approve" onClick={() => onAnswer(true)}>
          Approve
        </button>
        <button type="button" data-testid="deny" onClick={() => onAnswer(false)}>
          Deny
        </button>
      </div>
    </div>
  )
}

function codeOf(args: string): string {
  const parsed = tryParse(args) as { typescriptCode?: string } | string
  return typeof parsed === 'object' && parsed?.typescriptCode ? parsed.typescriptCode : args
}

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
