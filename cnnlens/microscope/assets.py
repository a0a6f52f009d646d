"""The site's one stylesheet and one script: written into ``assets/``, nothing fetched from a network."""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """\
:root { --fg: #1d1d1f; --muted: #6e6e73; --line: #d2d2d7; --bg: #fbfbfd; --card: #fff; --accent: #0b63c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header.top { padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--card); display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
header.top .crumbs a, header.top .crumbs span { margin-right: 6px; }
header.top .neighbours { margin-left: auto; }
header.top .neighbours > * { margin-left: 14px; }
main { padding: 16px 20px 40px; max-width: 1400px; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 16px; margin: 26px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
.facts { display: flex; gap: 22px; flex-wrap: wrap; margin: 8px 0; }
.facts div { min-width: 110px; }
.facts b { display: block; font-size: 15px; }
.facts span { color: var(--muted); font-size: 12px; }
img.figure { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
img.pixelated, .cell img { image-rendering: pixelated; }
table.report { border-collapse: collapse; font-size: 12px; width: 100%; }
table.report th, table.report td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
table.report th:first-child, table.report td:first-child, table.report td.type { text-align: left; }
table.report tr.site td { background: #eef5ff; }
table.channels { width: auto; }
.filter { margin: 6px 0 14px; }
.filter input { font: inherit; padding: 6px 10px; width: 340px; max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
.filter .count { margin-left: 10px; color: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(168px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
.card .pics { display: flex; gap: 4px; }
.card .pics img { width: 74px; height: 74px; object-fit: contain; background: #f3f3f3; }
.card .name { font-weight: 600; margin-top: 4px; }
.concept .pics { display: flex; flex-wrap: wrap; gap: 4px; }
.concept .pics img { width: 84px; height: 84px; object-fit: contain; background: #f3f3f3; }
.concept .pics img.featvis { outline: 2px solid #3060c0; }
.card .numbers { font-size: 12px; color: var(--muted); }
.hidden { display: none !important; }
.row { display: flex; gap: 8px; flex-wrap: wrap; align-items: flex-start; }
.cell { text-align: center; font-size: 11px; color: var(--muted); width: 116px; }
.cell img { width: 112px; height: 112px; object-fit: contain; background: #f3f3f3; border: 1px solid var(--line); }
.cell .caption { overflow-wrap: anywhere; }
.cell.link, a.cell { text-decoration: none; }
.cell .pics { display: flex; gap: 2px; justify-content: center; }
.cell .pics img { width: 54px; height: 54px; }
.row a.cell, .row div.cell { width: 176px; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 4px; }
.tag { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px; background: #e8e8ed; }
.tag.simple { background: #dff3e4; } .tag.complex { background: #e3ecff; } .tag.dead { background: #fde2e1; }
ul.layers { columns: 2; }
pre.json { font-size: 11px; }
"""

JS = """\
// Filter the cards (or rows) of a page: every word typed must match a word of an item's data-text
// (a number exactly, "12" is unit 12 and not 112; other words by their beginning, "comp" finds
// complex). The filter can also come in the address: layer.html?q=simple
(function () {
  function matches(word, tokens) {
    var numeric = /^[0-9.]+$/.test(word);
    return tokens.some(function (t) { return numeric ? t === word : t.indexOf(word) === 0; });
  }
  function apply(input) {
    var words = input.value.toLowerCase().split(/\\s+/).filter(function (w) { return w.length > 0; });
    var items = document.querySelectorAll("[data-text]");
    var shown = 0, rows = 0, rowsShown = 0;
    for (var i = 0; i < items.length; i++) {
      var tokens = items[i].getAttribute("data-text").toLowerCase().split(/[\\s:#,()]+/);
      var ok = words.every(function (w) { return matches(w, tokens); });
      var row = items[i].tagName === "TR";
      items[i].classList.toggle("hidden", !ok);
      if (row) { rows += 1; }
      if (ok) { shown += 1; if (row) { rowsShown += 1; } }
    }
    // cards (or sections) and table rows are counted apart: "1 of 4 shown; table: 1 of 16 rows"
    var count = document.getElementById("filter-count");
    var main = items.length - rows, mainShown = shown - rowsShown;
    if (count) {
      count.textContent = main > 0 ? mainShown + " of " + main + " shown" + (rows > 0 ? "; table: " + rowsShown + " of " + rows + " rows" : "")
                                   : rowsShown + " of " + rows + " rows shown";
    }
    document.body.setAttribute("data-shown", String(shown));
    document.body.setAttribute("data-shown-cards", String(mainShown));
    document.body.setAttribute("data-shown-rows", String(rowsShown));
  }
  document.addEventListener("DOMContentLoaded", function () {
    var input = document.getElementById("filter");
    if (!input) { return; }
    var query = new URLSearchParams(window.location.search).get("q");
    if (query) { input.value = query; }
    input.addEventListener("input", function () { apply(input); });
    apply(input);
  });
})();
"""
