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
// reported (not suggestions).
//
// The compiler sees a virtual file system: the project folder VIRTUAL holds tsconfig.json,
// tools.d.ts (the declarations) and program.ts, nothing else exists, and the only real files
// it may read are TypeScript's own library declarations (lib.*.d.ts in its package). So
// `typeof import('/etc/…')`, `import('./x')` or a triple-slash reference resolve to nothing:
// no host file is read, no host path appears in a message (messages name the project's files
// by their bare names). The private folder given as the first argument (made and removed by
// the Rust side) is only the compiler's working directory.
import { API } from 'typescript/unstable/sync'
import { readFileSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const version = JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version

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

const VIRTUAL = '/code-mode'
const config = VIRTUAL + '/tsconfig.json'
const declFile = VIRTUAL + '/tools.d.ts'
const sourceFile = VIRTUAL + '/program.ts'
const files = new Map([
  [config, JSON.stringify({ compilerOptions, files: ['tools.d.ts', 'program.ts'] })],
  [declFile, ''],
  [sourceFile, ''],
])
const NAMES = ['tsconfig.json', 'tools.d.ts', 'program.ts']

// TypeScript's own library declarations: the one real folder the compiler may read, and in
// it only lib.*.d.ts files.
const libDir = (() => {
  const platform = '@typescript/typescript-' + process.platform + '-' + process.arch + '/package.json'
  try { return dirname(require.resolve(platform, { paths: [dirname(require.resolve('typescript/package.json'))] })) + '/lib' } catch {}
  return null
})()
const isLib = (p) => libDir !== null && p.startsWith(libDir + '/') && /^lib\.[a-z0-9.]+\.d\.ts$/.test(p.slice(libDir.length + 1))
const isLibDir = (p) => libDir !== null && (p === libDir || libDir.startsWith(p === '/' ? '/' : p + '/'))
const isVirtualDir = (p) => p === '/' || p === VIRTUAL

const fs = {
  // undefined: the real file system answers (TypeScript's libs only); null: no such file.
  readFile: (p) => files.has(p) ? files.get(p) : isLib(p) ? undefined : null,
  fileExists: (p) => files.has(p) ? true : isLib(p) ? undefined : false,
  directoryExists: (p) => isVirtualDir(p) || isLibDir(p) ? true : false,
  getAccessibleEntries: (p) => p === VIRTUAL
    ? { files: NAMES, directories: [] }
    : p === '/' ? { files: [], directories: [VIRTUAL.slice(1)] }
    : p === libDir ? undefined
    : { files: [], directories: [] },
  realpath: (p) => p,
}

// Messages name the project's files by their bare names and TypeScript's libs by theirs.
const neutral = (text) => {
  let out = text.split(VIRTUAL + '/').join('')
  if (libDir !== null) out = out.split(libDir + '/').join('')
  return out
}

const api = new API({ cwd: dir, fs })
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
  files.set(sourceFile, source)
  if (declarations !== lastDeclarations) {
    files.set(declFile, declarations)
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
      out.push({ line, column, code: d.code, message: neutral(String(d.text)) })
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
