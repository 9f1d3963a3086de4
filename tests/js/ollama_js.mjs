// Runs one call (or one short scenario) of the official ollama-js library against a server and
// prints what the library returned as one JSON line: {"result": ...} or, when the library threw,
// {"thrown": {"name", "error", "status_code"}}. test_ollama_js.py drives it and checks the values.
//
//   node ollama_js.mjs HOST METHOD '{"the": "request"}'
import { Ollama } from 'ollama'

const [host, method, requestJson] = process.argv.slice(2)
const request = requestJson ? JSON.parse(requestJson) : {}
const ollama = new Ollama({ host })

async function drain(stream) {
  const parts = []
  for await (const part of stream) parts.push(part)
  return parts
}

// A streamed generate stopped after `after` parts, by the stream's own abort() or by the
// client's abort() (every stream it has open); then, at once, a short generate, timed: on a
// one-slot server it can only start once the server has stopped the abandoned answer.
async function abortStream({ after, how, follow, ...generate }) {
  const stream = await ollama.generate({ ...generate, stream: true })
  const parts = []
  let caught = null
  try {
    for await (const part of stream) {
      parts.push(part)
      if (parts.length === after) {
        if (how === 'client') ollama.abort()
        else stream.abort()
      }
    }
  } catch (err) {
    caught = err.name
  }
  const started = performance.now()
  const next = await ollama.generate({ ...follow, stream: false })
  return { parts, caught, next, next_seconds: (performance.now() - started) / 1000 }
}

async function call() {
  switch (method) {
    case 'version':
    case 'list':
    case 'ps':
      return ollama[method]()
    case 'show':
    case 'copy':
    case 'delete':
    case 'embed':
    case 'embeddings':
      return ollama[method](request)
    case 'generate':
    case 'chat':
    case 'create':
    case 'pull':
    case 'push': {
      const reply = await ollama[method](request)
      return request.stream ? drain(reply) : reply
    }
    case 'abort':
      return abortStream(request)
    default:
      throw new Error(`unknown method ${method}`)
  }
}

try {
  console.log(JSON.stringify({ result: await call() }))
} catch (err) {
  console.log(JSON.stringify({ thrown: { name: err.name, error: err.error ?? err.message, status_code: err.status_code ?? null } }))
}
