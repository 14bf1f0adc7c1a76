// The chat page: POST the prompt, read the Server-Sent Events of the answer from the response
// body as they arrive, and grow the answer in place. Stop aborts the fetch, which closes the
// connection; the server then cancels the model's request upstream.
const $ = (id) => document.getElementById(id);
let controller = null;

// Yield {event, data} for each SSE event of a fetch Response (WHATWG rules, reduced to what
// this server sends: `event:` and `data:` fields, blank line ends an event). Data is JSON.
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", event = "message", data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop(); // a line may be split between two reads: keep the tail
    for (const line of lines) {
      if (line === "") {
        if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
        event = "message";
        data = [];
      } else if (line.startsWith("event:")) {
        event = line.slice(6).trim();
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
  }
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

function usageLine(u) {
  const cost = u.cost_usd == null ? "cost not reported" : `$${Number(u.cost_usd).toFixed(6)}`;
  const tokens = u.total_tokens == null
    ? "usage not reported"
    : `${u.total_tokens} tokens (${u.input_tokens} in, ${u.output_tokens} out)`;
  return `Served by ${u.model ?? "unknown model"} · ${tokens} · ${cost}`;
}

async function send() {
  const prompt = $("prompt").value.trim();
  if (!prompt || controller) return;
  controller = new AbortController();
  $("output").textContent = "";
  $("usage").textContent = "";
  setStatus("streaming…");
  setBusy(true);
  try {
    const response = await fetch("/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error((await response.json()).error ?? response.statusText);
    let ended = false;
    for await (const { event, data } of readEvents(response)) {
      if (event === "token") {
        $("output").append(data); // a text node per token: the answer grows in place
      } else if (event === "done") {
        $("usage").textContent = usageLine(data);
        setStatus("done");
        ended = true;
      } else if (event === "error") {
        setStatus(`error: ${data.message}`, true);
        ended = true;
      }
    }
    if (!ended) setStatus("error: the answer broke off", true);
  } catch (err) {
    if (err.name === "AbortError") setStatus("stopped");
    else setStatus(`error: ${err.message}`, true);
  } finally {
    controller = null;
    setBusy(false);
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    send();
  }
});
$("stop").addEventListener("click", () => controller?.abort());
