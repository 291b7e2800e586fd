import { ConfigNoticeId } from '../configNotices';
import { ConfigFetch, configUrl, FETCH_TIMEOUT_MS, STALE_LIMIT_MS } from '../operatorConfig';
import { start } from '../start';
import {
  ACCOUNT,
  fakeFlex,
  jsonResponse,
  MemoryStorage,
  operatorAnswer,
  recordingLogger,
  validSettings,
  voiceTask,
  WORKFLOW_OTHER,
  WORKFLOW_PROTECTED,
} from '../testing/fakeFlex';

const OPERATOR = 'https://flex-operator.example.com';
const NOW = Date.parse('2026-12-07T10:00:00Z');

function setup(settings: unknown = validSettings(), configFetch: ConfigFetch = jest.fn(async () => jsonResponse(200, operatorAnswer()))) {
  const f = fakeFlex(settings);
  const log = recordingLogger();
  const storage = new MemoryStorage();
  const fetch = jest.fn();
  const go = () => start(f.flex, f.manager, { fetch, log, config: { fetch: configFetch, storage, now: () => NOW } });
  return { ...f, log, storage, fetch, configFetch, go };
}

/** Puts an answer in the cache as the plugin would have, fetched ageMs ago. */
function cache(storage: MemoryStorage, ageMs: number, answer = operatorAnswer()): void {
  storage.setItem(`flex-operator.config.v1:${OPERATOR}:${ACCOUNT}`, JSON.stringify({ fetchedAt: NOW - ageMs, config: answer }));
}

function expectNothingInstalled(s: ReturnType<typeof setup>): void {
  expect(s.flex.Actions.listeners.size).toBe(0);
  expect(s.flex.Actions.registered.size).toBe(0);
  expect(s.flex.MainHeader.Content.added).toHaveLength(0);
  expect(s.flex.TaskCanvasHeader.Content.added).toHaveLength(0);
}

const shownIds = (s: ReturnType<typeof setup>) => s.flex.Notifications.shown.map((n) => n.id);

describe('start', () => {
  it('reads the configuration from the operator for the agent and installs every behaviour', async () => {
    const s = setup();
    await expect(s.go()).resolves.toBe('ok');
    expect(s.configFetch).toHaveBeenCalledTimes(1);
    expect(s.configFetch).toHaveBeenCalledWith(configUrl(OPERATOR, ACCOUNT), expect.objectContaining({
      method: 'GET',
      headers: { Authorization: 'Bearer flex-token-of-alice' },
    }));
    ['beforeAcceptTask', 'beforeHangupCall', 'beforeTransferTask', 'beforeSetActivity', 'beforeSetWorkerActivity'].forEach((e) =>
      expect(s.flex.Actions.count(e)).toBe(1),
    );
    expect(s.flex.Actions.registered.has('FlexOperatorExtendWrapup')).toBe(true);
    expect(s.flex.MainHeader.Content.added).toHaveLength(2);
    expect(s.flex.TaskCanvasHeader.Content.added).toHaveLength(1);
    expect(s.log.lines.error).toEqual([]);
    expect(shownIds(s)).toEqual([]);
    // The answer is cached for the next page load, without the token.
    const [stored] = Array.from(s.storage.items.values());
    expect(JSON.parse(stored)).toEqual({ fetchedAt: NOW, config: operatorAnswer() });
    expect(stored).not.toContain('flex-token-of-alice');
    // A workflow the operator lists gets the callback.
    const payload: any = { task: voiceTask() };
    await s.flex.Actions.runBefore('AcceptTask', payload);
    expect(payload.conferenceOptions.conferenceStatusCallback).toBe(`${OPERATOR}/twilio/contact-centre/recovery/conference`);
  });

  it('reuses a cached answer within its max age without asking', async () => {
    const s = setup();
    cache(s.storage, 299_000);
    await expect(s.go()).resolves.toBe('ok');
    expect(s.configFetch).not.toHaveBeenCalled();
    expect(s.flex.Actions.count('beforeAcceptTask')).toBe(1);
  });

  it('asks again once the max age is past', async () => {
    const s = setup();
    cache(s.storage, 301_000, operatorAnswer({ recovery: undefined }));
    await expect(s.go()).resolves.toBe('ok');
    expect(s.configFetch).toHaveBeenCalledTimes(1);
    // The fresh answer's recovery policy is installed.
    expect(s.flex.Actions.count('beforeAcceptTask')).toBe(1);
  });

  it('reads the configuration again each max age, so a workflow added to a policy gets the callback without a reload', async () => {
    let refresh: (() => Promise<void>) | undefined;
    let every = 0;
    const answers = [operatorAnswer()];
    const added = operatorAnswer();
    added.recovery!.policies[0].workflowSids = [WORKFLOW_PROTECTED, WORKFLOW_OTHER];
    const configFetch = jest.fn(async () => jsonResponse(200, answers.shift() ?? added));
    const f = fakeFlex(validSettings());
    const storage = new MemoryStorage();
    let clock = NOW;
    await expect(
      start(f.flex, f.manager, {
        fetch: jest.fn(),
        log: recordingLogger(),
        config: { fetch: configFetch, storage, now: () => clock, schedule: (r, ms) => ((refresh = r), (every = ms)) },
      }),
    ).resolves.toBe('ok');
    expect(every).toBe(300_000);
    const accept = async () => {
      const payload: any = { task: voiceTask({ workflowSid: WORKFLOW_OTHER }) };
      await f.flex.Actions.runBefore('AcceptTask', payload);
      return payload.conferenceOptions;
    };
    expect(await accept()).toBeUndefined();
    // Within the max age the refresh reuses the cache; past it, it asks and installs the new list.
    clock += 100_000;
    await refresh!();
    expect(configFetch).toHaveBeenCalledTimes(1);
    clock += 300_000;
    await refresh!();
    expect(configFetch).toHaveBeenCalledTimes(2);
    expect((await accept())?.conferenceStatusCallback).toBe(`${OPERATOR}/twilio/contact-centre/recovery/conference`);
    // An operator that cannot be reached later leaves the installed list as it is.
    configFetch.mockImplementation(async () => Promise.reject(new TypeError('Failed to fetch')));
    clock += 300_000;
    await refresh!();
    expect((await accept())?.conferenceStatusCallback).toBe(`${OPERATOR}/twilio/contact-centre/recovery/conference`);
  });

  it('applies the local overrides', async () => {
    const s = setup(validSettings({ recovery: { gracefulTimeoutMs: 800, autoAccept: false }, activity: false }));
    await expect(s.go()).resolves.toBe('ok');
    expect(s.flex.Actions.count('beforeAcceptTask')).toBe(1);
    expect(s.flex.Actions.count('beforeSetActivity')).toBe(0);
    expect(s.flex.MainHeader.Content.added).toHaveLength(0);
  });

  describe('when the operator cannot be asked', () => {
    it.each([
      ['unreachable', jest.fn(async () => Promise.reject(new TypeError('Failed to fetch'))), /Failed to fetch/],
      ['failing', jest.fn(async () => jsonResponse(503, 'cannot read the policies')), /HTTP 503/],
      ['of another version', jest.fn(async () => jsonResponse(200, operatorAnswer({ version: 2 }))), /version 2; this plugin reads version 1/],
      ['answering for another account', jest.fn(async () => jsonResponse(200, operatorAnswer({ accountSid: 'ACffffffffffffffffffffffffffffffff' }))), /not AC0123/],
    ])('shows the agent that recovery is off, installs nothing, when the operator is %s', async (_, configFetch, message) => {
      const s = setup(validSettings(), configFetch as unknown as ConfigFetch);
      await expect(s.go()).resolves.toBe('unavailable');
      expectNothingInstalled(s);
      expect(shownIds(s)).toEqual([ConfigNoticeId.Unavailable]);
      expect(String(s.flex.Notifications.shown[0].context?.message)).toMatch(message);
      expect(s.flex.Notifications.text(0)).toMatch(/^Call recovery is OFF/);
      expect(s.log.lines.error).toHaveLength(1);
    });

    it('gives up after a bounded wait', async () => {
      jest.useFakeTimers();
      try {
        const s = setup(validSettings(), jest.fn(() => new Promise<never>(() => undefined)));
        const result = s.go();
        await Promise.resolve();
        jest.advanceTimersByTime(FETCH_TIMEOUT_MS);
        await expect(result).resolves.toBe('unavailable');
        expect(String(s.flex.Notifications.shown[0].context?.message)).toMatch(/no answer within 5 s/);
      } finally {
        jest.useRealTimers();
      }
    });

    it('uses a stale cached answer, and says so', async () => {
      const s = setup(validSettings(), jest.fn(async () => Promise.reject(new TypeError('Failed to fetch'))));
      cache(s.storage, 2 * 3600_000);
      await expect(s.go()).resolves.toBe('ok');
      expect(s.flex.Actions.count('beforeAcceptTask')).toBe(1);
      expect(shownIds(s)).toEqual([ConfigNoticeId.Stale]);
      expect(s.flex.Notifications.text(0)).toMatch(/from 120 min ago/);
      expect(s.log.lines.warn.join(' ')).toMatch(/Failed to fetch/);
    });

    it('does not use a cached answer older than the stale limit', async () => {
      const s = setup(validSettings(), jest.fn(async () => Promise.reject(new TypeError('Failed to fetch'))));
      cache(s.storage, STALE_LIMIT_MS + 1);
      await expect(s.go()).resolves.toBe('unavailable');
      expectNothingInstalled(s);
    });
  });

  it.each([401, 403])('does not fall back on the cache when the operator refuses the token (%i), and forgets it', async (status) => {
    const s = setup(validSettings(), jest.fn(async () => jsonResponse(status, 'the Flex token is not valid')));
    cache(s.storage, 2 * 3600_000);
    await expect(s.go()).resolves.toBe('unavailable');
    expectNothingInstalled(s);
    expect(shownIds(s)).toEqual([ConfigNoticeId.Unavailable]);
    expect(String(s.flex.Notifications.shown[0].context?.message)).toMatch(new RegExp(`refused this agent's Flex token \\(HTTP ${status}\\)`));
    expect(s.storage.items.size).toBe(0);
  });

  it('refuses an http:// public URL in the operator answer unless allowed for local development', async () => {
    const answer = operatorAnswer();
    const policy = answer.recovery!.policies[0];
    const http = 'http://localhost:9443';
    Object.assign(policy, {
      publicUrl: http,
      routes: { conference: `${http}/twilio/contact-centre/recovery/conference`, graceful: `${http}/flex/contact-centre/recovery/graceful`, recovery: '' },
    });
    const refused = setup(validSettings(), jest.fn(async () => jsonResponse(200, answer)));
    await expect(refused.go()).resolves.toBe('invalid');
    expectNothingInstalled(refused);
    expect(String(refused.flex.Notifications.shown[0].context?.message)).toMatch(
      /the operator's answer\.recovery\.policies\[0\]\.publicUrl must be an https URL/,
    );

    const allowed = setup(validSettings({ operatorUrl: 'http://localhost:9443', allowInsecureHttp: true }), jest.fn(async () => jsonResponse(200, answer)));
    await expect(allowed.go()).resolves.toBe('ok');
  });

  it('refuses an answer whose routes are not the ones the plugin builds', async () => {
    const answer = operatorAnswer();
    answer.recovery!.policies[0].routes.conference = `${OPERATOR}/v2/twilio/contact-centre/recovery/conference`;
    const s = setup(validSettings(), jest.fn(async () => jsonResponse(200, answer)));
    await expect(s.go()).resolves.toBe('invalid');
    expectNothingInstalled(s);
    expect(String(s.flex.Notifications.shown[0].context?.message)).toMatch(/conference route is .*\/v2\/twilio/);
  });

  it.each([
    ['missing', {}, /custom_data.flexOperator is missing/],
    ['malformed', validSettings({ operatorUrl: 'flex-operator.example.com' }), /operatorUrl must be an absolute https URL/],
    ['an http URL', validSettings({ operatorUrl: 'http://flex-operator.example.com' }), /must be an https URL.*mixed content/],
    ['of the former hand-written shape', { flexOperator: { publicUrl: OPERATOR, namespace: 'cc', recovery: { policies: [] } } }, /publicUrl is no longer set here/],
    ['of the wrong type', { flexOperator: [1, 2] }, /must be an object/],
  ])('disables itself, with one clear console error, when the settings are %s', async (_, customData, message) => {
    const s = setup(customData);
    await expect(s.go()).resolves.toBe('invalid');
    expect(s.log.lines.error).toHaveLength(1);
    expect(String(s.log.lines.error[0][0])).toMatch(/^flex-operator: the plugin is disabled/);
    expect(String(s.log.lines.error[0][0])).toMatch(message);
    // Nothing is installed: Flex runs as if the plugin were not there.
    expectNothingInstalled(s);
    expect(s.flex.Notifications.registered.size).toBe(0);
    expect(s.configFetch).not.toHaveBeenCalled();
    const payload: any = { task: voiceTask() };
    await s.flex.Actions.invokeAction('AcceptTask', payload);
    expect(payload.conferenceOptions).toBeUndefined();
  });

  it('shows the agent that recovery is off when Flex gives no account or token to ask with', async () => {
    const s = setup();
    s.manager.serviceConfiguration.account_sid = undefined;
    await expect(s.go()).resolves.toBe('unavailable');
    expect(s.configFetch).not.toHaveBeenCalled();
    expect(shownIds(s)).toEqual([ConfigNoticeId.Unavailable]);
    expectNothingInstalled(s);
  });

  it('does not throw when reading the configuration does', async () => {
    const s = setup(undefined);
    Object.defineProperty(s.manager, 'serviceConfiguration', {
      get() {
        throw new Error('not loaded');
      },
    });
    await expect(s.go()).resolves.toBe('invalid');
    expect(String(s.log.lines.error[0][0])).toMatch(/not loaded/);
  });

  it('stays quiet when disabled on purpose', async () => {
    const s = setup(validSettings({ enabled: false }));
    await expect(s.go()).resolves.toBe('disabled');
    expect(s.log.lines.error).toEqual([]);
    expect(s.configFetch).not.toHaveBeenCalled();
    expectNothingInstalled(s);
  });
});
