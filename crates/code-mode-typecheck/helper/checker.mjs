// code-mode type checker helper: keeps the TypeScript 7 compiler (tsgo, through its
// `typescript/unstable/sync` API) running and type-checks one program per request.
// Spoken to by crates/code-mode-typecheck over stdio, one JSON object per line.
//
// Rust -> helper   {"id":N,"declarations":"<.d.ts text>","source":"<.ts text>"}
// helper -> Rust   {"ready":true,"typescript":"7.0.2"}            (once, after a warm-up check)
//                  {"id":N,"diagnostics":[{"line","column","code","message"}]}
//                  {"id":N,"error":"..."}
//
// Lines and columns are 1-based, in `source`; columns count UTF-16 units. Only errors are
// reported (not suggestions). The two files live in the private folder given as the first
// argument (made and removed by the Rust side); the compiler reads nothing else but its own
// library declarations.
import { API } from 'typescript/unstable/sync'
import { writeFileSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'

const version = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('typescript/package.json'), 'utf8')).version

// Strict enough to catch wrong properties, argument types, missing fields and un-awaited
// promises used as data; loose where ordinary model code would fail for no gain (implicit
// `any` in callbacks, possibly-undefined values, `catch (e)` used as an Error).
const compilerOptions = {
  target: 'es2022',
  lib: ['es2022'],
  strict: true,
  noImplicitAny: false,
  strictNullChecks: false,
  noImplicitThis: false,
  useUnknownInCatchVariables: false,
  noEmit: true,
  skipLibCheck: true,
  types: [],
  allowUnreachableCode: true,
  allowUnusedLabels: true,
  isolatedModules: false,
}

const dir = process.argv[2]
if (!dir) { process.stderr.write('usage: checker.mjs WORK_DIR\n'); process.exit(2) }

const config = join(dir, 'tsconfig.json')
const declFile = join(dir, 'declarations.d.ts')
const sourceFile = join(dir, 'program.ts')
writeFileSync(config, JSON.stringify({ compilerOptions, files: ['declarations.d.ts', 'program.ts'] }))
writeFileSync(declFile, '')
writeFileSync(sourceFile, '')

const api = new API({ cwd: dir })
let opened = false
let lastDeclarations = ''

// 1-based line and column (UTF-16 units) of offset `pos` in `text`.
function position(text, pos) {
  let line = 1, start = 0
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; start = i + 1 }
  }
  return { line, column: Math.max(1, pos - start + 1) }
}

function check(declarations, source) {
  const changed = [sourceFile]
  writeFileSync(sourceFile, source)
  if (declarations !== lastDeclarations) {
    writeFileSync(declFile, declarations)
    lastDeclarations = declarations
    changed.push(declFile)
  }
  const snapshot = api.updateSnapshot(opened
    ? { fileChanges: { changed } }
    : { openProjects: [config], fileChanges: { invalidateAll: true } })
  opened = true
  try {
    const project = snapshot.getProject(config)
    if (!project) throw new Error('the compiler did not load its project')
    const program = project.program
    const found = [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)]
    const out = []
    for (const d of found) {
      if (d.category !== 1) continue // errors only
      const { line, column } = position(source, d.pos)
      out.push({ line, column, code: d.code, message: String(d.text) })
    }
    return out
  } finally {
    snapshot.dispose()
  }
}

const send = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

// A warm-up check, so the first real one finds the compiler and its library loaded.
check('declare function external_warm(input: { a: number }): Promise<{ b: string }>;\n',
  'async function __w() {\nconst r = await external_warm({ a: 1 });\nreturn r.b.length;\n}\n')
send({ ready: true, typescript: version })

let buffer = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buffer += chunk
  let nl
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl)
    buffer = buffer.slice(nl + 1)
    if (!line.trim()) continue
    let req
    try { req = JSON.parse(line) } catch { send({ id: null, error: 'the request is not JSON' }); continue }
    const id = Number.isSafeInteger(req.id) ? req.id : null
    if (typeof req.declarations !== 'string' || typeof req.source !== 'string') {
      send({ id, error: 'a request needs the strings declarations and source' })
      continue
    }
    try {
      send({ id, diagnostics: check(req.declarations, req.source) })
    } catch (e) {
      send({ id, error: String(e && e.message ? e.message : e) })
    }
  }
})
// The Rust side closed the pipe (it exited without dropping the checker): tidy up.
process.stdin.on('end', () => {
  try { api.close() } catch {}
  try { rmSync(dir, { recursive: true, force: true }) } catch {}
  process.exit(0)
})
