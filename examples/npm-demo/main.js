// The whole public surface this demo uses: init (loads the .wasm), Playground.load and predict.
// In an npm project the import is `from "quantscope"`; here it is the package folder that
// `wasm-pack build --target web --out-dir target/pkg-npm` writes (see README.md).
import init, { Playground, engineVersion } from "../../target/pkg-npm/quantscope.js";

const $ = (id) => document.getElementById(id);
const out = $("out");
const say = (line) => { out.textContent += line + "\n"; };

let playground = null; // kept between clicks: a new URL loads a new model
let loadedUrl = null;

async function run() {
  out.textContent = "";
  $("run").disabled = true;
  try {
    await init(); // fetches quantscope_bg.wasm next to quantscope.js; later calls are no-ops
    say(`quantscope ${engineVersion()}`);
    const url = $("url").value;
    if (playground === null || url !== loadedUrl) {
      say(`fetching ${url} ...`);
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      say(`loading ${(bytes.length / 1e6).toFixed(1)} MB ...`);
      const name = url.split("/").pop();
      // progress(stage, done, total): stages such as "parse", "webgpu", "upload".
      let lastStage = "";
      const progress = (stage) => { if (stage !== lastStage) { lastStage = stage; say(`  ${stage}`); } };
      playground?.free();
      playground = null;
      playground = await Playground.load(bytes, name, progress, $("gpu").checked);
      loadedUrl = url;
      const info = playground.deviceInfo();
      say(`backend: ${info.backend}${info.reason ? ` (${info.reason})` : ""}`);
    }
    const prompt = $("prompt").value;
    const prediction = await playground.predict(prompt, 5);
    say(`\nprompt ${JSON.stringify(prompt)} (${prediction.tokens.length} tokens), top 5 next tokens:`);
    for (const t of prediction.top) {
      say(`  ${(100 * t.prob).toFixed(2).padStart(6)} %  ${JSON.stringify(t.token)}  (id ${t.id}, logit ${t.logit.toFixed(3)})`);
    }
    document.body.dataset.state = "done"; // for headless checks
  } catch (e) {
    say(`error: ${e?.message ?? e}`);
    document.body.dataset.state = "error";
  } finally {
    $("run").disabled = false;
  }
}

$("run").addEventListener("click", run);
if (new URLSearchParams(location.search).has("autorun")) run();
