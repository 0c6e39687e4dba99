#!/usr/bin/env node
// chat.mjs -- an interactive chat over stdin that streams the model's replies.
//
//   node examples/node/chat.mjs [--model MODEL.gguf] [--system TEXT] [--temp 0.7] [--max-tokens 256]
//
// The model defaults to the project's own models/emberfall.gguf (a village
// innkeeper answers). Each line you type becomes a turn. With a chat template
// in the model the conversation is rendered with it (applyChatTemplate) and
// only the new part of each rendering is sent, so the session keeps its KV
// cache across turns; otherwise a turn is "User: ...\nAssistant:". The reply
// streams as it is generated (on a worker thread) and ends at the end of the
// turn, EOS or --max-tokens. Ctrl-C stops a reply (the conversation
// goes on); Ctrl-D or /quit leaves; /reset forgets the conversation.
// Runs from the repository (after `cd bindings/node && npm install`) or with
// emberlm installed.
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import readline from 'node:readline/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
let emberlm;
try {
  emberlm = require('emberlm');
} catch {
  emberlm = require(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bindings', 'node'));
}
const { Model, EmberError } = emberlm;

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', short: 'm' },
    threads: { type: 'string', short: 't', default: '0' },
    ctx: { type: 'string', short: 'c', default: '0' },
    temp: { type: 'string', default: '0.7' },
    seed: { type: 'string' },
    'max-tokens': { type: 'string', short: 'n', default: '256' },
    system: { type: 'string' },
  },
});
args.model ??= path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'emberfall.gguf');

let model;
try {
  model = await Model.load(args.model, { threads: Number(args.threads) });
} catch (e) {
  console.error(`chat: cannot load ${args.model}: ${e.message}`);
  process.exit(1);
}
const info = model.info;
console.error(`${info.name || info.architecture}: ${(info.nParams / 1e6).toFixed(1)}M parameters, ` +
              `${info.nCtxTrain}-token context, kernels ${info.kernels}. /quit to leave, /reset to start over.`);
let templated = Boolean(info.chatTemplate);
if (templated) {
  try { model.applyChatTemplate([{ role: 'user', content: 'hello' }]); } catch { templated = false; }
}
const system = args.system ?? (info.name === 'emberfall'
  ? 'Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.'
  : 'A conversation between a curious user and a helpful assistant.');
const messages = [{ role: 'system', content: system }];
let sent = ''; // the text the session holds so far (templated mode)
const session = model.session({
  nCtx: Number(args.ctx), temperature: Number(args.temp), seed: args.seed === undefined ? undefined : BigInt(args.seed),
});

const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
let replying = null; // the AbortController of the reply being streamed
rl.on('SIGINT', () => {
  if (replying) replying.abort();
  else rl.close();
});

let first = true;
rl.setPrompt('\nyou> ');
rl.prompt();
// Lines typed (or piped) while a reply streams wait in the iterator's buffer.
for await (const raw of rl) {
  const line = raw.trim();
  if (line === '/quit' || line === '/exit') break;
  if (line === '/reset') { session.reset(); first = true; sent = ''; messages.length = 1; }
  if (!line || line === '/reset') { rl.prompt(); continue; }
  let turn, stop;
  if (templated) {
    messages.push({ role: 'user', content: line });
    const full = model.applyChatTemplate(messages);
    if (!full.startsWith(sent)) { session.reset(); sent = ''; } // the template re-rendered history
    turn = full.slice(sent.length);
    sent = full;
    stop = info.name === 'emberfall' ? ['\n'] : [];
  } else {
    turn = (first ? system + '\n' : '') + `User: ${line}\nAssistant:`;
    stop = ['\nUser:'];
  }
  first = false;
  process.stdout.write('bot>');
  replying = new AbortController();
  let text = '';
  try {
    for await (const piece of session.stream(turn, { maxTokens: Number(args['max-tokens']), stop, special: templated, signal: replying.signal })) {
      text += piece;
      process.stdout.write(piece);
    }
  } catch (e) {
    if (e.name === 'AbortError') process.stdout.write(' [stopped]');
    else if (e instanceof EmberError && e.code === 'EMBER_ERR_CONTEXT_FULL') process.stdout.write('\n[the context is full: /reset to start over]');
    else throw e;
  } finally {
    replying = null;
  }
  if (templated) {
    messages.push({ role: 'assistant', content: text.trim() });
    // the token that held the stop string stays in the session (emberfall's newline is a token of its own)
    sent += text + (session.metrics?.finishReason === 'stop' && stop.length ? stop[0] : '');
  }
  const m = session.metrics;
  if (m) console.error(`\n  (${m.nGeneratedTokens} tokens, TTFT ${m.ttftMs.toFixed(0)} ms, ${m.decodeTokensPerS.toFixed(1)} tok/s)`);
  rl.prompt();
}
rl.close();
session.close();
model.close();
