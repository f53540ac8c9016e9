// Keeps the last thing a Face Beauty node said visible after its job ends.
//
// The nodes report through ComfyUI's progress text (PromptServer.send_progress_text), which the
// frontend shows in a `$$node-text-preview` widget. Frontend 1.27 leaves that widget in place
// after the run; 1.58 removes it when the job ends, so "done · 1 new · paid 15 credits", a
// failure's reason or "cancelled" would vanish. When the frontend removes its widget from one of
// our nodes, this puts the same text back in a small widget of our own (plain text, one line per
// line), and takes it away again as soon as the next run sends text. Nothing here is saved in
// workflows. docs/comfyui.md, "Frontends", says why and how it was checked.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPES = new Set(["FaceBeautyPro", "FaceBeautyLocal"]);
const FRONTEND_WIDGET = "$$node-text-preview";
const LAST_WIDGET = "face_beauty_last_status";
const WORD_JOINER = /\u2060/g; // face_beauty_nodes/bridge.py frontend_text()
const lastText = new Map(); // node id -> the last progress text it was sent

function plainText(text) {
  return String(text)
    .replace(WORD_JOINER, "")
    .split("\n")
    .map((line) => line.replace(/\s+$/, ""))
    .join("\n");
}

function findNode(nodeId) {
  const id = String(nodeId ?? "");
  const local = id.includes(":") ? id.split(":").pop() : id;
  const graph = app.canvas?.graph ?? app.graph;
  return graph?.getNodeById?.(Number(local)) ?? graph?.getNodeById?.(local) ?? null;
}

function removeLastText(node) {
  const widget = node.widgets?.find((w) => w.name === LAST_WIDGET);
  if (!widget) return;
  if (typeof node.removeWidget === "function") {
    node.removeWidget(widget);
  } else {
    widget.onRemove?.();
    node.widgets.splice(node.widgets.indexOf(widget), 1);
  }
  node.setDirtyCanvas?.(true, true);
}

function showLastText(node) {
  const text = lastText.get(String(node.id));
  if (!text || node.widgets?.some((w) => w.name === FRONTEND_WIDGET)) return;
  removeLastText(node);
  const element = document.createElement("div");
  element.className = "face-beauty-last-status";
  element.style.cssText =
    "white-space: pre-line; overflow-wrap: anywhere; font-size: 12px; line-height: 16px;" +
    "padding: 4px 12px; box-sizing: border-box; overflow: hidden; color: var(--input-text, #ddd);";
  element.textContent = plainText(text);
  const lines = element.textContent.split("\n").length;
  const widget = node.addDOMWidget(LAST_WIDGET, "face_beauty_last_status", element, {
    serialize: false,
    getValue: () => element.textContent,
    setValue: () => {},
    getMinHeight: () => lines * 16 + 12,
  });
  widget.serialize = false;
  const size = node.computeSize?.();
  if (size) node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1])]);
  node.setDirtyCanvas?.(true, true);
}

function showAllLastTexts() {
  for (const id of lastText.keys()) {
    const node = findNode(id);
    if (!node) lastText.delete(id);
    else if (!node.widgets?.some((w) => w.name === LAST_WIDGET)) showLastText(node);
  }
}

// When the frontend removes its text widget (1.58, at the end of the job), show ours.
function watchFrontendWidget(node) {
  const widget = node.widgets?.find((w) => w.name === FRONTEND_WIDGET);
  if (!widget || widget.faceBeautyWatched) return;
  widget.faceBeautyWatched = true;
  const onRemove = widget.onRemove;
  widget.onRemove = function (...args) {
    const result = onRemove?.apply(this, args);
    queueMicrotask(() => showLastText(node)); // after the frontend took it off the node
    return result;
  };
}

app.registerExtension({
  name: "FaceBeautyPro.LastStatus",
  setup() {
    api.addEventListener("progress_text", (event) => {
      const node = findNode(event.detail?.nodeId);
      if (!node || !NODE_TYPES.has(node.type)) return;
      lastText.set(String(node.id), event.detail.text);
      removeLastText(node); // a new run: the frontend's widget shows the live text
      setTimeout(() => watchFrontendWidget(node), 0); // once the frontend has added its widget
    });
    // A job that fails at once may end before that hook is in place: look again when it ends.
    for (const type of ["execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(type, () => setTimeout(showAllLastTexts, 250));
    }
  },
});
