// The chat page: POST the prompt, read the Server-Sent Events of the answer from the response
// body as they arrive, and grow the answer in place. A reasoning model's thinking grows in a
// "Thinking…" panel above it, open while the model thinks, folded away once the answer starts.
// Stop aborts the fetch, which closes the connection; the server then cancels the model's
// request upstream.
const $ = (id) => document.getElementById(id);
let controller = null;
let thinkingSince = null; // when the thinking of the current answer began, while it goes on

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
  const thought = u.reasoning_tokens ? `, ${u.reasoning_tokens} of them thinking` : "";
  const tokens = u.total_tokens == null
    ? "usage not reported"
    : `${u.total_tokens} tokens (${u.input_tokens} in, ${u.output_tokens} out${thought})`;
  return `Served by ${u.model ?? "unknown model"} · ${tokens} · ${cost}`;
}

function resetThinking() {
  thinkingSince = null;
  $("thinking").hidden = true;
  $("thinking").open = false;
  $("thinking").classList.remove("live");
  $("thinking-text").textContent = "";
  $("thinking-label").textContent = "Thinking…";
}

function appendThinking(piece) {
  if (thinkingSince === null) {
    thinkingSince = performance.now();
    $("thinking").hidden = false;
    $("thinking").open = true;
    $("thinking").classList.add("live");
  }
  const text = $("thinking-text");
  text.append(piece);
  text.scrollTop = text.scrollHeight; // keep the newest thinking in view
}

// The thinking is over (the answer starts, or the stream ends): fold it away, say how long it
// took. Stopped or failed mid-thought, it stays open, as far as it got.
function endThinking(folded) {
  if (thinkingSince === null) return;
  const seconds = (performance.now() - thinkingSince) / 1000;
  thinkingSince = null;
  $("thinking").classList.remove("live");
  if (folded) {
    $("thinking").open = false;
    $("thinking-label").textContent = `Thought for ${seconds.toFixed(1)} s`;
  } else {
    $("thinking-label").textContent = "Thinking (interrupted)";
  }
}

async function send() {
  const prompt = $("prompt").value.trim();
  if (!prompt || controller) return;
  controller = new AbortController();
  $("output").textContent = "";
  $("usage").textContent = "";
  resetThinking();
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
      if (event === "reasoning") {
        appendThinking(data);
      } else if (event === "token") {
        endThinking(true);
        $("output").append(data); // a text node per token: the answer grows in place
      } else if (event === "done") {
        endThinking(true);
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
    endThinking(false); // still thinking here means the answer never came
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
