// The console's failure funnel: draw the server's numbers (the JSON in #funnel-data) as charts.
//
// The tables beside each chart hold the same numbers, so the page is whole without script or
// without the chart library; `state` says which of those the page is in, on <body data-charts>.
'use strict';

const COLORS = ['#c0392b', '#d35400', '#f39c12', '#8e44ad', '#2c3e50', '#16a085'];
const PASSED = '#27ae60';
const OTHER = '#95a5a6';

const dataNode = document.getElementById('funnel-data');
let state = 'idle';  // idle → drawn | no-data | no-library

function setState(next) {
  state = next;
  document.body.dataset.charts = state;
}

function barOptions(stacked) {
  return {
    indexAxis: 'y',
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    scales: { x: { stacked, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked } },
    plugins: { legend: { display: stacked, position: 'bottom' } },
  };
}

function drawCodes(Chart, data) {
  const canvas = document.getElementById('chart-codes');
  const labels = data.codes.map((c) => `${c.code} ${c.label}`);
  const colors = data.codes.map((c) => (c.code === '0' ? PASSED : COLORS[0]));
  return new Chart(canvas, {
    type: 'bar',
    data: { labels, datasets: [{ label: '次数 Attempts', data: data.codes.map((c) => c.count), backgroundColor: colors }] },
    options: barOptions(false),
  });
}

function drawGroups(Chart, canvasId, rows, stacked) {
  const datasets = [{ label: '通过 passed', data: rows.map((r) => r.passed), backgroundColor: PASSED }];
  stacked.forEach((code, i) => {
    datasets.push({ label: `${code.code} ${code.label}`, data: rows.map((r) => r.counts[code.code] || 0),
      backgroundColor: COLORS[i % COLORS.length] });
  });
  datasets.push({ label: '其他失败 other failures', data: rows.map((r) => r.other), backgroundColor: OTHER });
  return new Chart(document.getElementById(canvasId), {
    type: 'bar', data: { labels: rows.map((r) => r.name), datasets }, options: barOptions(true),
  });
}

function main() {
  const data = dataNode ? JSON.parse(dataNode.textContent) : null;
  if (!data || !data.attempts) {
    setState('no-data');
    return;
  }
  const Chart = globalThis.Chart;  // the vendored UMD build (webapp/static/vendor)
  if (typeof Chart !== 'function') {
    setState('no-library');
    return;
  }
  drawCodes(Chart, data);
  drawGroups(Chart, 'chart-clients', data.clients, data.stacked);
  drawGroups(Chart, 'chart-systems', data.systems, data.stacked);
  setState('drawn');
}

main();
