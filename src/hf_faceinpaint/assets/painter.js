// The painting canvas of the demo app (app.py): the body of its gr.HTML's js_on_load, given `element`, `props` and
// `watch`. It shows the photo the server sent (props.scene, see hf_faceinpaint.editor.scene) with a layer of strokes
// over it, and sends nothing while painting: the Inpaint button's own js reads the layer (canvas.strokes) once.
const root = element.querySelector(".painter");
const photo = root.querySelector("img.photo");
const layer = root.querySelector("canvas.strokes");
const ring = root.querySelector(".ring");
const size = root.querySelector("#brush-size");
const pen = layer.getContext("2d", { willReadFrequently: true });
const [red, green, blue] = root.dataset.hole.split(",").map(Number);
const UNDO_DEPTH = 30;
let tool = "brush";
let undo = [];
let redo = [];
let last = null; // the pointer on the canvas while a stroke is painted
let shown = null; // the token of the scene on the canvas

const snapshot = () => pen.getImageData(0, 0, layer.width, layer.height);
const radius = () => Math.max(0.5, (Math.min(layer.width, layer.height) * size.value) / 200);

function refresh() {
  root.querySelector("[data-action=undo]").disabled = !undo.length;
  root.querySelector("[data-action=redo]").disabled = !redo.length;
  for (const choice of root.querySelectorAll("[data-tool]")) {
    choice.setAttribute("aria-pressed", String(choice.dataset.tool === tool));
  }
  root.querySelector(".brush-size output").textContent = `${size.value} %`;
}

function remember() {
  undo = [...undo.slice(1 - UNDO_DEPTH), snapshot()];
  redo = [];
}

// Undo (from = undo, to = redo) or redo (the other way round).
function step(from, to) {
  if (!from.length) return;
  to.push(snapshot());
  pen.putImageData(from.pop(), 0, 0);
  refresh();
}

function at(event) {
  const box = layer.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * layer.width) / box.width,
    y: ((event.clientY - box.top) * layer.height) / box.height,
  };
}

function paint(from, to) {
  pen.globalCompositeOperation = tool === "eraser" ? "destination-out" : "source-over";
  pen.strokeStyle = pen.fillStyle = `rgb(${red}, ${green}, ${blue})`;
  pen.lineWidth = 2 * radius();
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  if (from === to) {
    pen.arc(to.x, to.y, radius(), 0, 2 * Math.PI);
    pen.fill();
  } else {
    pen.moveTo(from.x, from.y);
    pen.lineTo(to.x, to.y);
    pen.stroke();
  }
}

// Each pixel fully painted or not at all, so the canvas shows exactly the mask the server will receive.
function settle() {
  const pixels = snapshot();
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const on = data[i + 3] >= 128;
    data[i] = on ? red : 0;
    data[i + 1] = on ? green : 0;
    data[i + 2] = on ? blue : 0;
    data[i + 3] = on ? 255 : 0;
  }
  pen.putImageData(pixels, 0, 0);
}

function moveRing(event) {
  const box = layer.getBoundingClientRect();
  const across = (2 * radius() * box.width) / layer.width;
  ring.style.width = ring.style.height = `${across}px`;
  const [left, top] = [event.clientX - box.left - across / 2, event.clientY - box.top - across / 2];
  ring.style.transform = `translate(${left}px, ${top}px)`;
  ring.hidden = event.pointerType !== "mouse";
}

function load(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the photo could not be shown"));
    image.src = url;
  });
}

// Show a scene: its photo, its strokes (a mask file) or none, and an empty undo history.
async function open(scene) {
  if (!scene) {
    shown = null;
    root.dataset.state = "empty";
    photo.removeAttribute("src");
    return;
  }
  if (scene.token === shown) return;
  root.dataset.state = "loading";
  try {
    const [picture, marks] = await Promise.all([load(scene.photo), scene.strokes ? load(scene.strokes) : null]);
    if (props.scene?.token !== scene.token) return; // a newer scene arrived meanwhile
    photo.src = picture.src;
    layer.width = scene.width;
    layer.height = scene.height;
    root.style.setProperty("--aspect", `${scene.width} / ${scene.height}`);
    undo = [];
    redo = [];
    last = null;
    if (marks) {
      pen.drawImage(marks, 0, 0);
      settle();
    }
    shown = scene.token;
    root.dataset.state = "ready";
    refresh();
  } catch (error) {
    root.dataset.state = "error";
    console.error(error);
  }
}

layer.addEventListener("pointerdown", (event) => {
  if (shown === null || event.button !== 0) return;
  event.preventDefault();
  layer.setPointerCapture(event.pointerId);
  remember();
  last = at(event);
  paint(last, last);
});
layer.addEventListener("pointermove", (event) => {
  moveRing(event);
  if (last === null) return;
  const next = at(event);
  paint(last, next);
  last = next;
});
const finish = () => {
  if (last === null) return;
  last = null;
  settle();
  refresh();
};
layer.addEventListener("pointerup", finish);
layer.addEventListener("pointercancel", finish);
layer.addEventListener("pointerleave", () => (ring.hidden = true));

root.querySelector(".tools").addEventListener("click", (event) => {
  const target = event.target.closest("button");
  if (!target || shown === null) return;
  const action = target.dataset.action;
  if (target.dataset.tool) tool = target.dataset.tool;
  else if (action === "undo") step(undo, redo);
  else if (action === "redo") step(redo, undo);
  else if (action === "clear") {
    remember();
    pen.clearRect(0, 0, layer.width, layer.height);
  }
  refresh();
});
size.addEventListener("input", refresh);

// Shortcuts: [ and ] step the brush size, Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo / redo; keys typed into a text
// field are left alone. Installed per canvas, and removed once this canvas has left the page.
function onKey(event) {
  if (!element.isConnected) {
    document.removeEventListener("keydown", onKey);
    return;
  }
  if (shown === null || !root.offsetParent) return;
  if (event.target.closest?.("input:not([type=range]), textarea, select, [contenteditable=true]")) return;
  const ctrl = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (ctrl && key === "z") step(event.shiftKey ? redo : undo, event.shiftKey ? undo : redo);
  else if (ctrl && key === "y") step(redo, undo);
  else if (!ctrl && (key === "[" || key === "]")) {
    size.value = Number(size.value) + (key === "]" ? 1 : -1);
    refresh();
  } else return;
  event.preventDefault();
}
document.addEventListener("keydown", onKey);

watch("scene", () => open(props.scene));
open(props.scene);
