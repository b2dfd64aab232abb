// pytest-qwencmp: sorting and expanding the comparison tables (inlined by html_report; no external resources).
(function () {
  var root = document.currentScript && document.currentScript.parentNode;
  if (!root) { return; }
  function cellValue(row, col, type) {
    var cell = row.children[col];
    var v = cell ? cell.getAttribute('data-v') : '';
    if (type === 'num') { var n = parseFloat(v); return isNaN(n) ? null : n; }
    return (v || '').toLowerCase();
  }
  function sortTable(th) {
    var table = th.closest('table');
    var tbody = table.tBodies[0];
    var col = +th.getAttribute('data-col');
    var type = th.getAttribute('data-type');
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    Array.prototype.forEach.call(table.querySelectorAll('th.qc-th'), function (h) { h.setAttribute('aria-sort', 'none'); });
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var pairs = [], pinned = [];
    Array.prototype.forEach.call(tbody.querySelectorAll('tr.qc-item'), function (row) {
      var pair = [row, row.nextElementSibling];
      (row.classList.contains('qc-overall') ? pinned : pairs).push(pair);
    });
    pairs.sort(function (p, q) {
      var a = cellValue(p[0], col, type), b = cellValue(q[0], col, type);
      if (a === null && b === null) { return (+p[0].getAttribute('data-i')) - (+q[0].getAttribute('data-i')); }
      if (a === null) { return 1; }
      if (b === null) { return -1; }
      if (a < b) { return -dir; }
      if (a > b) { return dir; }
      return (+p[0].getAttribute('data-i')) - (+q[0].getAttribute('data-i'));
    });
    pinned.concat(pairs).forEach(function (pair) { tbody.appendChild(pair[0]); if (pair[1]) { tbody.appendChild(pair[1]); } });
  }
  function setOpen(button, open) {
    var detail = document.getElementById(button.getAttribute('aria-controls'));
    if (!detail) { return; }
    button.setAttribute('aria-expanded', open ? 'true' : 'false');
    if (open) { detail.removeAttribute('hidden'); } else { detail.setAttribute('hidden', ''); }
  }
  root.addEventListener('click', function (event) {
    var target = event.target;
    var th = target.closest('th.qc-th');
    if (th && root.contains(th)) { sortTable(th); return; }
    var toggle = target.closest('button.qc-toggle');
    if (toggle && root.contains(toggle)) { setOpen(toggle, toggle.getAttribute('aria-expanded') !== 'true'); return; }
    var all = target.closest('[data-qc-expand],[data-qc-collapse]');
    if (all && root.contains(all)) {
      var slug = all.getAttribute('data-qc-expand') || all.getAttribute('data-qc-collapse');
      var open = all.hasAttribute('data-qc-expand');
      var table = root.querySelector('table[data-qc-table="' + slug + '"]');
      if (table) { Array.prototype.forEach.call(table.querySelectorAll('button.qc-toggle'), function (b) { setOpen(b, open); }); }
    }
  });
  root.addEventListener('keydown', function (event) {
    var th = event.target.closest && event.target.closest('th.qc-th');
    if (th && (event.key === 'Enter' || event.key === ' ')) { event.preventDefault(); sortTable(th); }
  });
})();
