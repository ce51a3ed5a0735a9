// Follows a Server-Sent Events URL with a real EventSource (the `eventsource` package, the
// WHATWG API on Node's fetch): it reconnects by itself, after the server's `retry:`, and
// sends the last id it saw as `Last-Event-ID`. Driven by tests/e2e/test_sse.py:
//
//   node tests/node/sse-follow.mjs URL
//
// prints one JSON line per thing the EventSource reports, to stdout:
//   {"kind": "open"}
//   {"kind": "message", "lastEventId": "12", "data": <the event's JSON>}
//   {"kind": "error-event", "data": <the google.rpc.Status of an `event: error`>}
//   {"kind": "connection-error", "message": "...", "code": 503}   (the EventSource's own)
// and closes the EventSource and exits when its standard input ends.

import { EventSource } from "eventsource";

const url = process.argv[2];
if (!url) {
  console.error("usage: node tests/node/sse-follow.mjs URL");
  process.exit(2);
}

function report(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const source = new EventSource(url);
source.addEventListener("open", () => report({ kind: "open" }));
source.addEventListener("message", (event) => {
  report({ kind: "message", lastEventId: event.lastEventId, data: JSON.parse(event.data) });
});
// One listener hears both: a server's `event: error` is a MessageEvent with data, the
// EventSource's own connection errors are not.
source.addEventListener("error", (event) => {
  if (typeof event.data === "string") {
    report({ kind: "error-event", data: JSON.parse(event.data) });
  } else {
    report({ kind: "connection-error", message: event.message ?? "", code: event.code ?? null });
  }
});

process.stdin.resume();
process.stdin.on("end", () => {
  source.close();
  process.exit(0);
});
