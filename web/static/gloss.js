// For an English reader: hovering a Chinese snippet shows each word's pinyin and meaning
// (CC-CEDICT) as a tooltip. Text is only ever set with textContent, never parsed as HTML.
(function () {
  if (document.body.dataset.reader !== "en") return;
  document.querySelectorAll('.hit[data-lang="zh"] .snippet').forEach(function (el) {
    el.addEventListener("mouseenter", function () {
      if (el.dataset.glossed) return;
      el.dataset.glossed = "1";
      fetch("/api/gloss?text=" + encodeURIComponent(el.textContent))
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (pieces) {
          if (!pieces.length) return;
          el.textContent = "";
          pieces.forEach(function (p) {
            var span = document.createElement("span");
            span.textContent = p.word;
            if (p.pinyin) {
              span.className = "gloss";
              span.title = p.pinyin + " — " + p.senses.join("; ");
            }
            el.appendChild(span);
          });
        });
    });
  });
})();
