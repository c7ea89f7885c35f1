// scratch: time Wal2JsonDecoder.decode on captured records (main-thread cost per change)
const fs = require('fs');
const { Wal2JsonDecoder } = require('../dist/listener/decoders/wal2json'); const { emptyCatalog } = require('../dist/listener/catalog');
const text = fs.readFileSync('/tmp/w2j.txt'); const bufs = [];
for (let s = 0, i; (i = text.indexOf(10, s)) >= 0; s = i + 1) bufs.push(text.subarray(s, i));
const emitSink = []; let n = 0, chars = 0;
function run() {
  const d = new Wal2JsonDecoder(emptyCatalog(), []);
  const t0 = process.hrtime.bigint();
  for (const b of bufs) d.decode({ walStart: 0n, walEnd: 0n, data: b }, (item) => { if (item.kind === 'change') { n++; chars += item.event.json ? item.event.json.length : 0; emitSink.push(item.event.json); if (emitSink.length >= 2000) { Buffer.from(emitSink.join(',')); emitSink.length = 0; } } });
  return Number(process.hrtime.bigint() - t0) / 1e6;
}
const times = []; for (let r = 0; r < +(process.argv[2] || 5); r++) times.push(run());
console.log('ms per pass', times.map((t) => t.toFixed(0)).join(' '), 'min', Math.min(...times).toFixed(0), 'changes', n / times.length, 'chars/change', (chars / n).toFixed(1));
