import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadSinkConfig } from '../../sink/config';

const BASE = { PGCDC_PROJECT: 'p', PGCDC_SUBSCRIPTION: 'sub', PGCDC_DATASET: 'ds' };

describe('sink: configuration', function () {
  it('defaults give a bounded run of the named subscription into the dataset', function () {
    const cfg = loadSinkConfig(BASE);
    assert.deepEqual(cfg, {
      projectId: 'p',
      subscription: 'projects/p/subscriptions/sub',
      deadLetterSubscription: undefined,
      bigQueryProject: 'p',
      dataset: 'ds',
      location: undefined,
      maxStalenessMinutes: 15,
      maxRunSeconds: 300,
      mode: 'once',
      batchMessages: 50,
      pullWaitSeconds: 20,
      bigQueryStorageEmulatorHost: undefined,
    });
  });

  it('every variable is honoured', function () {
    const cfg = loadSinkConfig({
      ...BASE,
      PGCDC_SUBSCRIPTION: 'projects/other/subscriptions/s2',
      PGCDC_BQ_PROJECT: 'bqp',
      PGCDC_BQ_LOCATION: 'EU',
      PGCDC_MAX_STALENESS_MINUTES: '90',
      PGCDC_MAX_RUN_SECONDS: '30',
      PGCDC_MODE: 'continuous',
      PGCDC_SINK_BATCH_MESSAGES: '5',
      PGCDC_SINK_PULL_WAIT_SECONDS: '7',
      PGCDC_BQ_STORAGE_EMULATOR_HOST: '127.0.0.1:9060',
      PGCDC_DEAD_LETTER_SUBSCRIPTION: 'dl',
    });
    assert.equal(cfg.subscription, 'projects/other/subscriptions/s2');
    assert.equal(cfg.deadLetterSubscription, 'projects/p/subscriptions/dl');
    assert.equal(cfg.bigQueryProject, 'bqp');
    assert.equal(cfg.location, 'EU');
    assert.equal(cfg.maxStalenessMinutes, 90);
    assert.equal(cfg.maxRunSeconds, 30);
    assert.equal(cfg.mode, 'continuous');
    assert.equal(cfg.batchMessages, 5);
    assert.equal(cfg.pullWaitSeconds, 7);
    assert.equal(cfg.bigQueryStorageEmulatorHost, '127.0.0.1:9060');
  });

  it('a missing or malformed variable is named in the error', function () {
    assert.throws(() => loadSinkConfig({ ...BASE, PGCDC_DATASET: '' }), /PGCDC_DATASET/);
    assert.throws(() => loadSinkConfig({ PGCDC_SUBSCRIPTION: 's', PGCDC_DATASET: 'd' }), /PGCDC_PROJECT/);
    assert.throws(() => loadSinkConfig({ ...BASE, PGCDC_MODE: 'forever' }), /PGCDC_MODE/);
    assert.throws(() => loadSinkConfig({ ...BASE, PGCDC_MAX_RUN_SECONDS: '-1' }), /PGCDC_MAX_RUN_SECONDS/);
    assert.throws(() => loadSinkConfig({ ...BASE, PGCDC_DATASET: 'my-ds' }), ConfigError);
  });

  it('the entry point exits 2 on a configuration error', function () {
    const main = path.join(__dirname, '..', '..', 'sink', 'main.js');
    const r = spawnSync(process.execPath, [main], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /PGCDC_PROJECT/);
  });
});
