'use strict';
// The project's own trained model, models/emberfall.gguf (village NPC dialogue),
// end to end through the Node package: streamed, blocking and scheduled
// generation give the same text as the `ember` CLI, and the text continues a
// scene in the corpus's form.
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const { Model } = require('..');

const REPO = path.resolve(__dirname, '..', '..', '..');
const CLI = process.env.EMBER_CLI || path.join(REPO, 'build', 'ember');
const MODEL = path.join(REPO, 'models', 'emberfall.gguf');
const SCENE = 'The village of Ashford lies in a green valley below the old mountain road.\n' +
  'Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.\n' +
  'Player: Good evening! Any news?\n' +
  'Innkeeper:';
const VILLAGERS = [
  'Guard: I keep the gate of Ashford. They call me Tomas, and I am stern.\nPlayer: Any news?\nGuard:',
  'Smith: I work the forge by the east gate. I am proud of my work.\nPlayer: What do you sell?\nSmith:',
  'Baker: I keep the bakery by the market. I never forget a face.\nPlayer: Good morning!\nBaker:',
];
const LINE = /^[A-Z][A-Za-z' ]*: \S.*$/;
const STOP = { stop: ['\n\n'] };

// The lines after the prompt's unfinished one, without a last line cut short.
const completeLines = (text) => text.split('\n').slice(1, -1);

describe('default model', { skip: !fs.existsSync(MODEL) && `${MODEL} is missing` }, () => {
  let model;
  before(async () => { model = await Model.load(MODEL, { nThreads: 2 }); });
  after(() => model?.close());

  test('metadata is the model card\'s', () => {
    assert.equal(model.info.name, 'emberfall');
    assert.equal(model.info.architecture, 'llama');
    assert.equal(model.info.nCtxTrain, 256);
    assert.ok(model.info.chatTemplate.includes('Player: '));
  });

  test('greedy scene: stream = generate = CLI, in the corpus\'s form', async () => {
    let streamed = '';
    for await (const piece of model.session({ temperature: 0 }).stream(SCENE, { maxTokens: 100, ...STOP })) streamed += piece;
    const s = model.session({ temperature: 0 });
    const text = await s.generate(SCENE, { maxTokens: 100, ...STOP });
    s.close();
    assert.equal(streamed, text);
    const cli = execFileSync(CLI, ['--quiet', 'run', '-m', MODEL, '-p', SCENE, '-n', '100', '--temp', '0',
      '--stop', '\\n\\n']).toString('utf8');
    assert.equal(cli, SCENE + text + '\n');
    const lines = completeLines(text);
    assert.ok(lines.length >= 3, text);
    for (const line of lines) assert.match(line, LINE);
    assert.ok(lines.some((l) => l.startsWith('Player: ')), text);
  });

  test('a seed replays; seeds differ', async () => {
    const texts = new Set();
    for (const seed of [1, 2, 3, 4]) {
      const a = model.session({ temperature: 0.8, seed });
      const b = model.session({ temperature: 0.8, seed });
      const ta = await a.generate(SCENE, { maxTokens: 80, ...STOP });
      assert.equal(await b.generate(SCENE, { maxTokens: 80, ...STOP }), ta);
      a.close(); b.close();
      for (const line of completeLines(ta)) assert.match(line, LINE);
      texts.add(ta);
    }
    assert.ok(texts.size > 1);
  });

  test('the chat template renders the scene the model was trained on', async () => {
    const messages = [
      { role: 'system', content: 'Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.' },
      { role: 'user', content: 'Good evening! Any news?' },
      { role: 'assistant', name: 'Innkeeper', content: 'Only that the miller is getting married.' },
      { role: 'user', content: 'Where is the smith?' },
    ];
    const prompt = model.applyChatTemplate(messages);
    assert.equal(prompt, 'Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.\n' +
      'Player: Good evening! Any news?\n' +
      'Innkeeper: Only that the miller is getting married.\n' +
      'Player: Where is the smith?\n' +
      'Innkeeper:');
    assert.ok(!model.applyChatTemplate(messages, { addGenerationPrompt: false }).endsWith('Innkeeper:'));
    const s = model.session({ temperature: 0 });
    const reply = await s.generate(prompt, { maxTokens: 40, stop: ['\n'] });
    s.close();
    assert.match('Innkeeper:' + reply, LINE);
    assert.throws(() => model.applyChatTemplate(messages, { template: "{{ raise_exception('no system role') }}" }),
      (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT' && /no system role/.test(e.message));
    assert.throws(() => model.applyChatTemplate([{ role: 'user' }]), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
  });

  test('villagers scheduled together say what each says alone', async () => {
    const alone = [];
    for (const [i, prompt] of VILLAGERS.entries()) {
      const s = model.session({ temperature: 0.7, seed: 100 + i });
      alone.push(await s.generate(prompt, { maxTokens: 40, ...STOP }));
      s.close();
    }
    const sched = model.scheduler();
    const sessions = VILLAGERS.map((_, i) => sched.session({ temperature: 0.7, seed: 100 + i }));
    const reqs = VILLAGERS.map((p, i) => sched.submit(sessions[i], p, { maxTokens: 40, ...STOP }));
    const got = VILLAGERS.map(() => '');
    for (let guard = 0; guard < 10000 && !reqs.every((r) => r.finished); ++guard) {
      sched.step(4);
      reqs.forEach((r, i) => { got[i] += r.poll(); });
    }
    reqs.forEach((r, i) => { got[i] += r.poll(); });
    sessions.forEach((s) => s.close());
    sched.close();
    assert.deepEqual(got, alone);
  });
});
