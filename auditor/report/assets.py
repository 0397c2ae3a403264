"""The report's style sheet and script, inlined into the page (no file to ship beside it).

The script is plain JavaScript with no library: sortable tables (click a column's header;
again to reverse) and a text filter on the findings. The page works without it: tables stay
in their default order.
"""

CSS = """
:root { --ink: #1d2733; --muted: #5d6b7a; --line: #d8dee5; --band: #f4f6f8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1400px; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2.5rem 0 .5rem; padding-bottom: .25rem;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .4rem; }
p.meta, p.note, figcaption, .muted { color: var(--muted); }
p.unavailable { background: var(--band); border-left: 4px solid #b0bac5; padding: .5rem .75rem; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; }
nav a { color: #1f5fa8; }
figure { margin: 1rem 0 1.5rem; }
svg.chart { display: block; width: 100%; max-width: 960px; height: auto; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .55rem; text-align: left;
         vertical-align: top; }
th { background: var(--band); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 600; }
.scroll { overflow-x: auto; max-width: 100%; }
table.findings { font-size: 12.5px; }
table.findings td { white-space: nowrap; }
table.findings td.summary { min-width: 22rem; white-space: normal; }
table.findings thead th { position: sticky; top: 0; z-index: 1; }
th button { font: inherit; font-weight: 600; color: inherit; background: none; border: 0;
            padding: 0; cursor: pointer; }
th button::after { content: " \\2195"; color: #9aa6b2; }
th[aria-sort="ascending"] button::after { content: " \\2191"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: " \\2193"; color: var(--ink); }
.sev { display: inline-block; border-radius: 3px; padding: 0 .35rem; font-weight: 600; }
.sev-critical { background: #f8d7d4; color: #8e1f14; }
.sev-warning { background: #fcebd0; color: #7a4a05; }
.sev-info { background: #dde9f6; color: #1f4d7a; }
details pre { white-space: pre-wrap; word-break: break-word; max-width: 40rem; margin: .25rem 0;
              font-size: 11.5px; background: var(--band); padding: .4rem; }
input[type=search] { font: inherit; padding: .3rem .5rem; width: 22rem; max-width: 100%; }
@media print { .scroll { overflow: visible; } input[type=search] { display: none; } }
"""

JS = """
(function () {
  "use strict";
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});

  function sortKey(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === "") { return null; }
    if (!numeric) { return raw; }
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }

  function sortTable(table, headers, column) {
    var th = headers[column];
    var numeric = th.getAttribute("data-type") === "num";
    var state = th.getAttribute("aria-sort");
    // Numbers (money first of all) sort largest first on the first click.
    var dir = state === "ascending" ? -1 : state === "descending" ? 1 : (numeric ? -1 : 1);
    var body = table.tBodies[0];
    var keyed = Array.prototype.map.call(body.rows, function (row, index) {
      return {row: row, key: sortKey(row.cells[column], numeric), index: index};
    });
    keyed.sort(function (a, b) {
      if (a.key === null || b.key === null) {  // empty cells last, either way
        return a.key === b.key ? a.index - b.index : (a.key === null ? 1 : -1);
      }
      var order = numeric ? (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
                          : collator.compare(a.key, b.key);
      return order !== 0 ? order * dir : a.index - b.index;
    });
    var fragment = document.createDocumentFragment();
    keyed.forEach(function (item) { fragment.appendChild(item.row); });
    body.appendChild(fragment);
    Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, column) {
      var button = th.querySelector("button");
      if (button) {
        button.addEventListener("click", function () { sortTable(table, headers, column); });
      }
    });
  });

  var filter = document.getElementById("findings-filter");
  var table = document.getElementById("findings-table");
  var shown = document.getElementById("findings-shown");
  if (filter && table && shown) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
    filter.addEventListener("input", function () {
      var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var count = 0;
      rows.forEach(function (row, i) {
        var hit = words.every(function (w) { return texts[i].indexOf(w) !== -1; });
        row.hidden = !hit;
        if (hit) { count += 1; }
      });
      shown.textContent = String(count);
    });
  }
})();
"""
