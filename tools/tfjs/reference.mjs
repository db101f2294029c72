// Runs a TF.js model.json with TensorFlow.js itself (cpu backend, Node) and writes its outputs
// as .npy: the reference Cairn's importer is compared against.
//   node reference.mjs MODEL_JSON INPUT.npy OUT_DIR
// Prints one JSON line: {"outputs": [{"name", "file", "shape"}], "ms": ...}.
// Loads shards from disk through an IOHandler (tfjs-node, which reads files, cannot install here).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as tfc from '@tensorflow/tfjs-converter';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

function readNpy(path) {
  const buf = readFileSync(path);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + headerLen).toString('latin1');
  if (!header.includes("'descr': '<f4'") || header.includes("'fortran_order': True")) {
    throw new Error(`${path}: only C-order float32 .npy files are read here`);
  }
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const start = 10 + headerLen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return tf.tensor(data, shape, 'float32');
}

function writeNpy(path, values, shape) {
  const descr = values instanceof Int32Array ? '<i4' : '<f4';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head.writeUInt8(1, 6);
  head.writeUInt8(0, 7);
  head.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]));
}

function fileHandler(modelPath) {
  return {
    load: async () => {
      const json = JSON.parse(readFileSync(modelPath, 'utf8'));
      const dir = dirname(modelPath);
      const weightSpecs = [];
      const parts = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) parts.push(readFileSync(join(dir, p)));
      }
      const all = Buffer.concat(parts);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.length),
      };
    },
  };
}

const [modelPath, inputPath, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error('usage: node reference.mjs MODEL_JSON INPUT.npy OUT_DIR');
  process.exit(2);
}
await tf.setBackend('cpu');
mkdirSync(outDir, { recursive: true });
const format = JSON.parse(readFileSync(modelPath, 'utf8')).format;
const x = readNpy(inputPath);
let names;
let results;
const t0 = performance.now();
if (format === 'graph-model') {
  const model = await tfc.loadGraphModel(fileHandler(modelPath));
  // Ask for the GraphDef's own tensor names (what Cairn names its outputs), not signature keys.
  const json = JSON.parse(readFileSync(modelPath, 'utf8'));
  const signature = json.signature || (json.userDefinedMetadata || {}).signature;
  names = signature && signature.outputs ? Object.values(signature.outputs).map((o) => o.name) : model.outputNodes;
  results = model.execute(x, names);
} else {
  const model = await tfl.loadLayersModel(fileHandler(modelPath));
  names = model.outputNames;
  results = model.predict(x);
}
if (!Array.isArray(results)) results = [results];
const outputs = [];
for (let i = 0; i < results.length; i++) {
  const name = names[i].replace(/:0$/, '');
  const file = join(outDir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy`);
  writeNpy(file, await results[i].data(), results[i].shape);
  outputs.push({ name, file, shape: results[i].shape });
}
console.log(JSON.stringify({ outputs, ms: performance.now() - t0 }));
