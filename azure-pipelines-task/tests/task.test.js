'use strict';
// The Mlgate@1 shim under azure-pipelines-task-lib's MockTestRunner: the exact argv handed to
// Python, and the task result for each of mlgate's exit codes.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const taskDir = path.join(__dirname, '..', 'MlgateV1');
const { MockTestRunner } = require(path.join(taskDir, 'node_modules', 'azure-pipelines-task-lib', 'mock-test'));

const PY = '/usr/bin/python3';
const WHICH = { which: { python3: PY }, checkPath: { [PY]: true } };

async function runTask(scenarioOrMaker) {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'mlgate-task-'));
  const scenario = typeof scenarioOrMaker === 'function' ? scenarioOrMaker(temp) : scenarioOrMaker;
  process.env.MLGATE_TEST_SCENARIO = JSON.stringify(scenario);
  process.env.MLGATE_TEST_TEMP = temp;
  try {
    const tr = new MockTestRunner(path.join(__dirname, 'scenario.js'), path.join(taskDir, 'task.json'));
    tr.nodePath = process.execPath; // the Node running these tests, instead of a downloaded one
    await tr.runAsync();
    return tr;
  } finally {
    delete process.env.MLGATE_TEST_SCENARIO;
    delete process.env.MLGATE_TEST_TEMP;
    fs.rmSync(temp, { recursive: true, force: true });
  }
}

// The argument list the mock tool runner logged for the (single) exec: '   <arg>' debug lines.
function execArgs(tr) {
  const lines = tr.stdout.split(/\r?\n/).map((l) => l.replace(/^##vso\[task\.debug\]/, ''));
  const start = lines.findIndex((l) => l === 'Arguments:');
  assert.notEqual(start, -1, 'no tool was executed');
  const args = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('   ')) break;
    args.push(line.slice(3));
  }
  return args;
}

function outputVariable(tr, name) {
  const re = new RegExp(`##vso\\[task\\.setvariable variable=${name};isOutput=true;issecret=false;\\]([^\\r\\n]*)`);
  const m = tr.stdout.match(re);
  return m ? m[1] : undefined;
}

function execAnswer(cmdline, code, stdout) {
  return { exec: { [cmdline]: { code, stdout: stdout || '' } } };
}

const GATE = ['-m', 'mlgate', 'gate', 'models:/fraud/3', '--artifacts=model dir', '--policy=policy.yml',
  '--evidence-dir=evidence', '--stage=production'];
const GATE_INPUTS = {
  command: 'gate', ref: 'models:/fraud/3', artifacts: 'model dir', policy: 'policy.yml',
  evidenceDir: 'evidence', stage: 'production',
  // inputs of other commands are never passed to gate
  manifest: 'ignored.json', vault: 'ignored-vault', comment: 'ignored',
};

for (const [code, result, succeeded, issue] of [
  [0, 'passed', true, null],
  [1, 'refused', false, 'mlgate refused the release (exit 1); see the log above for why'],
  [2, 'configuration-error', false, 'mlgate configuration error (exit 2): fix the inputs or files named in the log above'],
  [3, 'could-not-evaluate', false, 'mlgate could not evaluate (exit 3): a service, network or file failure; nothing was passed'],
]) {
  test(`gate exit ${code} -> ${result}`, async () => {
    const cmdline = [PY, ...GATE].join(' ');
    const evidence = path.resolve('evidence', 'evidence.json');
    const tr = await runTask({
      inputs: GATE_INPUTS,
      answers: { ...WHICH, ...execAnswer(cmdline, code, 'mlgate says hi'), exist: { [evidence]: code < 2 } },
    });
    assert.ok(tr.ran(cmdline), `expected ${cmdline}\n${tr.stdout}`);
    assert.deepEqual(execArgs(tr), GATE);
    assert.equal(tr.invokedToolCount, 1);
    assert.equal(tr.succeeded, succeeded, tr.stdout);
    assert.equal(outputVariable(tr, 'exitCode'), String(code));
    assert.equal(outputVariable(tr, 'result'), result);
    // the gate's decision is its exit code's meaning; no decision when it could not decide
    assert.equal(outputVariable(tr, 'decision'), code < 2 ? result : undefined);
    assert.equal(outputVariable(tr, 'evidencePath'), code < 2 ? evidence : undefined);
    if (issue) assert.ok(tr.createdErrorIssue(issue), `missing error issue in\n${tr.stdout}`);
    else assert.equal(tr.errorIssues.length, 0, tr.errorIssues.join('\n'));
  });
}

test('an unexpected exit code fails the task as could-not-evaluate', async () => {
  const cmdline = [PY, ...GATE].join(' ');
  const tr = await runTask({ inputs: GATE_INPUTS, answers: { ...WHICH, ...execAnswer(cmdline, 139) } });
  assert.ok(tr.failed);
  assert.equal(outputVariable(tr, 'result'), 'could-not-evaluate');
  assert.ok(tr.createdErrorIssue('mlgate ended with unexpected exit code 139; nothing was passed'));
});

test('seal: optional directory, booleans as bare flags, values that start with - stay values', async () => {
  const args = ['-m', 'mlgate', 'seal', 'model', '--output=-odd name.json', '--force', '--follow-internal-symlinks', '-vv'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'seal', directory: 'model', output: '-odd name.json', force: 'true',
      followInternalSymlinks: 'true', verbose: '2', policy: 'not-for-seal.yml', json: 'true' },
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
});

test('seal --model and gate get the ledger (record checks the gate\'s entry there)', async () => {
  const cases = [
    [{ command: 'seal', model: 'models:/fraud/3', ledger: 'file:ledger.jsonl' },
      ['-m', 'mlgate', 'seal', '--model=models:/fraud/3', '--ledger=file:ledger.jsonl']],
    [{ command: 'gate', ref: 'models:/fraud/3', stage: 'production', ledger: 'file:ledger.jsonl' },
      ['-m', 'mlgate', 'gate', 'models:/fraud/3', '--stage=production', '--ledger=file:ledger.jsonl']],
  ];
  for (const [inputs, args] of cases) {
    const cmdline = [PY, ...args].join(' ');
    const tr = await runTask({ inputs, answers: { ...WHICH, ...execAnswer(cmdline, 0) } });
    assert.deepEqual(execArgs(tr), args);
    assert.ok(tr.succeeded, tr.stdout);
  }
});

test('audit show with a ledger', async () => {
  const args = ['-m', 'mlgate', 'audit', 'show', 'fraud@production', '--ledger=ledger.jsonl', '--json'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'audit-show', ref: 'fraud@production', ledger: 'ledger.jsonl', json: 'true' },
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
});

test('pythonPath input replaces the PATH lookup', async () => {
  const args = ['-m', 'mlgate', 'verify', 'deploy', '--manifest=manifest.json'];
  const cmdline = ['/opt/venv/bin/python', ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'verify', directory: 'deploy', manifest: 'manifest.json', pythonPath: '/opt/venv/bin/python' },
    answers: execAnswer(cmdline, 1),
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.failed);
  assert.equal(outputVariable(tr, 'result'), 'refused');
});

test('secrets with a workload-identity service connection: ids as argv, access token only in the env', async () => {
  const token = 'canary-access-token-5f1e';
  const args = ['-m', 'mlgate', 'secrets', '--vault=kv-ml-prod', '--secrets=db-password,api-key', '--to=env',
    '--identity=azure-pipelines', '--tenant-id=tenant-0001', '--client-id=client-0002',
    '--service-connection-id=conn-0003'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'secrets', vault: 'kv-ml-prod', secrets: 'db-password,api-key', to: 'env', azureSubscription: 'conn-0003' },
    endpoints: {
      'conn-0003': { scheme: 'WorkloadIdentityFederation', params: { tenantid: 'tenant-0001', serviceprincipalid: 'client-0002' } },
      SystemVssConnection: { scheme: 'OAuth', params: { AccessToken: token } },
    },
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.ok(tr.ran(cmdline), tr.stdout);
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
  assert.ok(tr.stdout.includes('##vso[task.setsecret]' + token), 'the token is registered as a secret first');
  // task-lib's own debug line for endpoint parameters carries the value; the agent masks it (the
  // access token is a secret it issued). Everything else, the command line above all, must not.
  const others = tr.stdout.split(/\r?\n/)
    .filter((l) => !l.startsWith('##vso[task.setsecret]') && !l.startsWith('##vso[task.debug]SystemVssConnection auth param'));
  for (const line of others) {
    assert.ok(!line.includes(token), `token leaked: ${line}`);
  }
});

test('secrets with a service-principal-secret connection is a configuration error; nothing runs', async () => {
  const tr = await runTask({
    inputs: { command: 'secrets', vault: 'kv', secrets: '*', azureSubscription: 'conn-spn' },
    endpoints: { 'conn-spn': { scheme: 'ServicePrincipal', params: { tenantid: 't', serviceprincipalid: 'c' } } },
    answers: WHICH,
  });
  assert.equal(tr.invokedToolCount, 0);
  assert.ok(tr.failed);
  assert.equal(outputVariable(tr, 'result'), 'configuration-error');
  assert.ok(tr.errorIssues.some((m) => m.includes("uses the 'ServicePrincipal' scheme")), tr.errorIssues.join('\n'));
});

test('a missing positional input is a configuration error naming it; nothing runs', async () => {
  const tr = await runTask({ inputs: { command: 'gate', policy: 'p.yml' }, answers: WHICH });
  assert.equal(tr.invokedToolCount, 0);
  assert.ok(tr.failed);
  assert.ok(tr.createdErrorIssue("mlgate configuration error: mlgate gate needs the input 'ref'"), tr.errorIssues.join('\n'));
});

test('a ref that looks like an option is refused; nothing runs', async () => {
  const tr = await runTask({ inputs: { command: 'record', ref: '--stage=prod' }, answers: WHICH });
  assert.equal(tr.invokedToolCount, 0);
  assert.ok(tr.failed);
  assert.ok(tr.errorIssues.some((m) => m.includes("input 'ref' must not start with '-'")), tr.errorIssues.join('\n'));
});

test('no Python on PATH is a configuration error that says what to add', async () => {
  const tr = await runTask({ inputs: { command: 'audit-verify' }, answers: { which: {} } });
  assert.equal(tr.invokedToolCount, 0);
  assert.ok(tr.failed);
  assert.ok(tr.errorIssues.some((m) => m.includes('no python3 or python on PATH')), tr.errorIssues.join('\n'));
});

test('gate passed without an evidence file: a decision, no evidence path', async () => {
  const cmdline = [PY, ...GATE].join(' ');
  const tr = await runTask({ inputs: GATE_INPUTS, answers: { ...WHICH, ...execAnswer(cmdline, 0), exist: {} } });
  assert.ok(tr.succeeded, tr.stdout);
  assert.equal(outputVariable(tr, 'decision'), 'passed');
  assert.equal(outputVariable(tr, 'evidencePath'), undefined);
});

test('no command is a configuration error listing the commands; nothing runs', async () => {
  const tr = await runTask({ inputs: {}, answers: WHICH });
  assert.equal(tr.invokedToolCount, 0);
  assert.ok(tr.failed);
  assert.equal(outputVariable(tr, 'result'), 'configuration-error');
  assert.ok(tr.errorIssues.some((m) => m.includes("input 'command' is ''; use one of: seal, verify")), tr.errorIssues.join('\n'));
});

test('rollback: the model name, stage and ledger', async () => {
  const args = ['-m', 'mlgate', 'rollback', 'fraud-detector', '--stage=production', '--ledger=file:ledger.jsonl'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'rollback', modelName: 'fraud-detector', stage: 'production', ledger: 'file:ledger.jsonl', ref: 'ignored' },
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
});

test('pipeline variables named MLGATE_* never reach Python; the rest of the environment does', async () => {
  const args = ['-m', 'mlgate', 'verify', 'deploy', '--manifest=manifest.json'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'verify', directory: 'deploy', manifest: 'manifest.json' },
    env: { MLGATE_NO_ANCHORS: 'true', MLGATE_PLATFORM: 'local', mlgate_policy: 'lower-case.yml' },
    recordEnv: true,
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  const line = tr.stdout.split(/\r?\n/).find((l) => l.startsWith('MLGATE_TEST_CHILD_ENV '));
  assert.ok(line, tr.stdout);
  const seen = JSON.parse(line.slice('MLGATE_TEST_CHILD_ENV '.length));
  assert.deepEqual(seen.mlgate, []);
  assert.equal(seen.path, true);
  assert.ok(tr.succeeded, tr.stdout);
});

// -- the bundled install: the wheel inside the extension, hashed locks, a new environment per run ---------

const BUNDLE_DIR = path.join(taskDir, 'mlgate');

function bundle() {
  const file = path.join(BUNDLE_DIR, 'bundle.json');
  assert.ok(fs.existsSync(file), 'no bundle: run `python azure-pipelines-task/bundle.py` first');
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const PROBE = '-c import sys; print("%d.%d.%d" % sys.version_info[:3])';

// The command lines of a bundled install into <temp>/mlgate-fixed, and the answers that make it pass.
function bundledRun(temp, lock, { version = '3.12.4', pip = 0, extra = [] } = {}) {
  const b = bundle();
  const home = path.join(temp, 'mlgate-fixed');
  const venv = path.join(home, 'venv');
  const python = path.join(venv, 'bin', 'python');
  const lines = {
    probe: `${PY} ${PROBE}`,
    venv: `${PY} -m venv ${venv}`,
    pip: [python, '-m', 'pip', 'install', '--require-hashes', '--no-input', '--disable-pip-version-check', '--quiet',
      '-r', path.join(BUNDLE_DIR, b.locks[lock]), '-r', path.join(home, 'mlgate-wheel.txt'), ...extra].join(' '),
  };
  const exec = {
    [lines.probe]: { code: 0, stdout: version + '\n' },
    [lines.venv]: { code: 0, stdout: '' },
    [lines.pip]: { code: pip, stdout: '' },
  };
  return { b, home, python, lines, exec };
}

test('bundled install: version check, new venv, the wheel and the command\'s lock with --require-hashes', async () => {
  let plan;
  const tr = await runTask((temp) => {
    plan = bundledRun(temp, 'core');
    const run = `${plan.python} -m mlgate verify deploy --manifest=manifest.json`;
    plan.lines.run = run;
    return {
      inputs: { command: 'verify', directory: 'deploy', manifest: 'manifest.json', install: 'bundled' },
      fixedHome: true,
      answers: { ...WHICH, exec: { ...plan.exec, [run]: { code: 0, stdout: '' } } },
    };
  });
  for (const name of ['probe', 'venv', 'pip', 'run']) assert.ok(tr.ran(plan.lines[name]), `${name}: ${plan.lines[name]}\n${tr.stdout}`);
  assert.ok(tr.succeeded, tr.stdout);
  assert.ok(tr.stdout.includes(`mlgate ${plan.b.version}: installing the bundled wheel and locks/core.txt`), tr.stdout);
  assert.match(plan.b.sha256, /^[0-9a-f]{64}$/);
  assert.ok(fs.existsSync(path.join(BUNDLE_DIR, plan.b.wheel)), 'the wheel named in bundle.json is bundled');
});

test('bundled install: gate installs the azure lock; a wheelhouse means no index', async () => {
  let plan;
  const tr = await runTask((temp) => {
    const wheelhouse = path.join(temp, 'wheels');
    plan = bundledRun(temp, 'azure', { extra: ['--no-index', `--find-links=${wheelhouse}`] });
    const run = `${plan.python} -m mlgate gate models:/fraud/3 --stage=production`;
    plan.lines.run = run;
    return {
      inputs: { command: 'gate', ref: 'models:/fraud/3', stage: 'production', install: 'bundled', wheelhouse },
      fixedHome: true,
      answers: { ...WHICH, exec: { ...plan.exec, [run]: { code: 0, stdout: '' } }, exist: {} },
    };
  });
  for (const name of ['probe', 'venv', 'pip', 'run']) assert.ok(tr.ran(plan.lines[name]), `${name}\n${tr.stdout}`);
  assert.ok(tr.succeeded, tr.stdout);
});

test('bundled install: an old Python on the agent is a configuration error that says what to add', async () => {
  let plan;
  const tr = await runTask((temp) => {
    plan = bundledRun(temp, 'core', { version: '3.8.18' });
    return { inputs: { command: 'verify', directory: 'd', manifest: 'm.json', install: 'bundled' }, fixedHome: true,
      answers: { ...WHICH, exec: plan.exec } };
  });
  assert.ok(tr.failed);
  assert.equal(outputVariable(tr, 'result'), 'configuration-error');
  assert.ok(!tr.ran(plan.lines.venv) && !tr.ran(plan.lines.pip), 'nothing is installed');
  assert.ok(tr.errorIssues.some((m) => m.includes(`the agent's Python ${PY} is 3.8.18; mlgate needs Python 3.10 or newer`) &&
    m.includes('UsePythonVersion@0')), tr.errorIssues.join('\n'));
});

test('bundled install: a failed pip install (a hash mismatch, no index) cannot pass: exit 3, mlgate never runs', async () => {
  let plan;
  const tr = await runTask((temp) => {
    plan = bundledRun(temp, 'core', { pip: 1 });
    return { inputs: { command: 'seal', directory: 'model', install: 'bundled' }, fixedHome: true,
      answers: { ...WHICH, exec: plan.exec } };
  });
  assert.ok(tr.failed);
  assert.equal(outputVariable(tr, 'exitCode'), '3');
  assert.equal(outputVariable(tr, 'result'), 'could-not-evaluate');
  assert.ok(tr.errorIssues.some((m) => m.includes('mlgate could not be installed: installing mlgate with --require-hashes failed (exit 1)')),
    tr.errorIssues.join('\n'));
  assert.ok(!tr.stdout.includes('-m mlgate seal'), 'mlgate did not run');
});

test('an unknown install mode is a configuration error', async () => {
  const tr = await runTask({ inputs: { command: 'audit-verify', install: 'pypi' }, answers: WHICH });
  assert.ok(tr.failed);
  assert.ok(tr.errorIssues.some((m) => m.includes("input 'install' is 'pypi'; use bundled or preinstalled")), tr.errorIssues.join('\n'));
});

test('mlgate\'s own output variables are set again under the task\'s camelCase names (secrets are not)', async () => {
  const args = ['-m', 'mlgate', 'record', 'fraud/3', '--evidence=evidence.json'];
  const cmdline = [PY, ...args].join(' ');
  const vso = (name, value, secret) => `##vso[task.setvariable variable=${name};isOutput=true;issecret=${secret};]${value}`;
  const stdout = [vso('approver', 'risk-officer', false), vso('ledger_head', 'ab'.repeat(32), false),
    vso('manifest_sha256', 'cd'.repeat(32), false), vso('evidence_sha256', 'ef'.repeat(32), false),
    vso('gate_passed', 'true', false), vso('db_password', 'canary-secret-value', true)].join('\n');
  const tr = await runTask({
    inputs: { command: 'record', ref: 'fraud/3', evidence: 'evidence.json' },
    answers: { ...WHICH, ...execAnswer(cmdline, 0, stdout) },
  });
  assert.ok(tr.succeeded, tr.stdout);
  assert.equal(outputVariable(tr, 'ledgerHead'), 'ab'.repeat(32));
  assert.equal(outputVariable(tr, 'manifestSha256'), 'cd'.repeat(32));
  assert.equal(outputVariable(tr, 'evidenceSha256'), 'ef'.repeat(32));
  assert.equal(outputVariable(tr, 'gatePassed'), 'true');
  assert.ok(!/variable=dbPassword/.test(tr.stdout));
});

test('an empty filePath input (the agent fills in the sources directory) is not passed', async () => {
  const sources = path.resolve('.');
  const args = ['-m', 'mlgate', 'seal', 'model'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'seal', directory: 'model', output: sources },
    env: { BUILD_SOURCESDIRECTORY: sources },
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
});

// -- signing inputs ----------------------------------------------------------------------------------------

test('seal: sign, signature, serialization, shardSize and ledgerKey reach their flags', async () => {
  const args = ['-m', 'mlgate', 'seal', '--model=models:/fraud/3', '--serialization=shards', '--shard-size=512MiB',
    '--sign=release.pem', '--signature=out/model.sig', '--ledger=file:ledger.jsonl', '--ledger-key=ledger.pem'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'seal', model: 'models:/fraud/3', serialization: 'shards', shardSize: '512MiB',
      sign: 'release.pem', signature: 'out/model.sig', ledger: 'file:ledger.jsonl', ledgerKey: 'ledger.pem',
      publicKey: 'not-for-seal.pub.pem' },
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
});

test('gate trusts every key of a multi-line publicKey; verify and audit take one', async () => {
  const args = ['-m', 'mlgate', 'gate', 'models:/fraud/3', '--sign=azure-keyvault://kv-ml/keys/gate',
    '--public-key=release.pub.pem', '--public-key=azure-keyvault://kv-ml/keys/release'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'gate', ref: 'models:/fraud/3', sign: 'azure-keyvault://kv-ml/keys/gate',
      publicKey: 'release.pub.pem\n\n  azure-keyvault://kv-ml/keys/release  \n', signature: 'not-for-gate.sig' },
    answers: { ...WHICH, ...execAnswer(cmdline, 0), exist: {} },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
  for (const command of ['verify', 'audit-verify']) {
    const refused = await runTask({
      inputs: { command, directory: 'deploy', publicKey: 'a.pub.pem\nb.pub.pem', signature: 'model.sig' },
      answers: WHICH,
    });
    assert.ok(refused.failed);
    assert.equal(outputVariable(refused, 'result'), 'configuration-error');
    assert.equal(refused.invokedToolCount, 0, 'nothing runs');
    assert.ok(refused.errorIssues.some((m) => m.includes(`input 'publicKey' has 2 lines; mlgate ${command.replace('-', ' ')} takes one`)),
      refused.errorIssues.join('\n'));
  }
});

test('an unknown serialization (or to) is a configuration error naming the input; nothing runs', async () => {
  for (const [inputs, says] of [
    [{ command: 'seal', directory: 'model', serialization: 'zip' }, "input 'serialization' is 'zip'; use files or shards"],
    [{ command: 'secrets', vault: 'kv', secrets: '*', to: 'file' }, "input 'to' is 'file'; use env or output"],
  ]) {
    const tr = await runTask({ inputs, answers: WHICH });
    assert.ok(tr.failed);
    assert.equal(outputVariable(tr, 'result'), 'configuration-error');
    assert.equal(tr.invokedToolCount, 0);
    assert.ok(tr.errorIssues.some((m) => m.includes(says)), tr.errorIssues.join('\n'));
  }
});

test('verify with a Key Vault public key gets the service connection\'s workload identity, as secrets does', async () => {
  const token = 'canary-access-token-9a7c';
  const args = ['-m', 'mlgate', 'verify', 'deploy', '--public-key=azure-keyvault://kv-ml/keys/release',
    '--signature=model.sig'];
  const cmdline = [PY, ...args].join(' ');
  const tr = await runTask({
    inputs: { command: 'verify', directory: 'deploy', publicKey: 'azure-keyvault://kv-ml/keys/release',
      signature: 'model.sig', azureSubscription: 'conn-0003' },
    endpoints: {
      'conn-0003': { scheme: 'WorkloadIdentityFederation', params: { tenantid: 'tenant-0001', serviceprincipalid: 'client-0002' } },
      SystemVssConnection: { scheme: 'OAuth', params: { AccessToken: token } },
    },
    recordEnv: true,
    answers: { ...WHICH, ...execAnswer(cmdline, 0) },
  });
  assert.deepEqual(execArgs(tr), args);
  assert.ok(tr.succeeded, tr.stdout);
  const line = tr.stdout.split(/\r?\n/).find((l) => l.startsWith('MLGATE_TEST_CHILD_ENV '));
  assert.deepEqual(JSON.parse(line.slice('MLGATE_TEST_CHILD_ENV '.length)).mlgate,
    ['MLGATE_CLIENT_ID', 'MLGATE_IDENTITY', 'MLGATE_SERVICE_CONNECTION_ID', 'MLGATE_TENANT_ID']);
  assert.ok(tr.stdout.includes('##vso[task.setsecret]' + token), 'the token is registered as a secret first');
  for (const l of tr.stdout.split(/\r?\n/)) {
    if (l.startsWith('##vso[task.setsecret]') || l.startsWith('##vso[task.debug]SystemVssConnection auth param')) continue;
    assert.ok(!l.includes(token), `token leaked: ${l}`);
  }
});

test('bundled install: a Key Vault key installs the azure lock even for seal of local files', async () => {
  let plan;
  const tr = await runTask((temp) => {
    plan = bundledRun(temp, 'azure');
    const run = `${plan.python} -m mlgate seal model --sign=azure-keyvault://kv-ml/keys/release`;
    plan.lines.run = run;
    return {
      inputs: { command: 'seal', directory: 'model', sign: 'azure-keyvault://kv-ml/keys/release', install: 'bundled' },
      fixedHome: true,
      answers: { ...WHICH, exec: { ...plan.exec, [run]: { code: 0, stdout: '' } } },
    };
  });
  for (const name of ['probe', 'venv', 'pip', 'run']) assert.ok(tr.ran(plan.lines[name]), `${name}\n${tr.stdout}`);
  assert.ok(tr.succeeded, tr.stdout);
  const refused = await runTask({
    inputs: { command: 'verify', directory: 'd', publicKey: 'AZURE-KEYVAULT://kv/keys/k', signature: 's',
      install: 'bundled', extras: 'core' },
    answers: WHICH,
  });
  assert.ok(refused.failed);
  assert.equal(outputVariable(refused, 'result'), 'configuration-error');
  assert.ok(refused.errorIssues.some((m) => m.includes("input 'publicKey' names a Key Vault key (azure-keyvault://...), " +
    "which needs the Azure SDKs, and input 'extras' is 'core'")), refused.errorIssues.join('\n'));
});
