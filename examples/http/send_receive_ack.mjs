// send -> receive -> ack over postroom's HTTP API with Node's built-in fetch (Node >= 18).
//
//   postroom serve &
//   node examples/http/send_receive_ack.mjs [BASE_URL] [QUEUE]
//
// With tokens configured, set POSTROOM_TOKEN to a token with send+receive scopes.
const base = process.argv[2] ?? "http://127.0.0.1:8000";
const queue = encodeURIComponent(process.argv[3] ?? "images.resize");
const token = process.env.POSTROOM_TOKEN;

async function api(path, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const resp = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
  const doc = await resp.json();
  // Errors are problem documents: {type, title, status, detail}.
  if (!resp.ok) throw new Error(`${doc.status} ${doc.title}: ${doc.detail}`);
  return doc;
}

const { id } = await api(`/v1/queues/${queue}/messages`, { body: { image: "cat.png" } });
console.log(`sent ${id}`);

// Long-poll up to 5 s; lease the message for 60 s.
const { messages } = await api(`/v1/queues/${queue}/receive`, {
  max_messages: 1,
  wait: 5,
  visibility_timeout: 60,
});
if (messages.length === 0) throw new Error("no message arrived");
const [msg] = messages;
console.log(`received ${msg.id} attempt ${msg.attempts}: ${JSON.stringify(msg.body)}`);

try {
  // ... do the work here ...
  await api(`/v1/queues/${queue}/ack`, { receipt: msg.receipt, id: msg.id });
  console.log("acked");
} catch (err) {
  // A failed attempt: give it back with the queue's backoff, recording the error.
  await api(`/v1/queues/${queue}/retry`, {
    receipt: msg.receipt,
    error: { type: err.name, message: err.message, traceback: err.stack ?? "" },
  });
  throw err;
}
