import { NoticeId } from '../notifications';
import { RETRY_DELAYS_MS } from '../recovery/graceful';
import { AGENT_CALL, CONFERENCE, fakeFlex, installResolved, recordingLogger, validCustomData, voiceTask, WORKFLOW_OTHER } from '../testing/fakeFlex';

type FetchMock = jest.Mock<Promise<{ ok: boolean; status: number }>, [string, RequestInit]>;

const started = (fetch: FetchMock, customData = validCustomData(), token = 'flex-token-of-alice') => {
  const f = fakeFlex(customData, token);
  const log = recordingLogger();
  installResolved(f.flex, f.manager, { fetch, log });
  return { ...f, log };
};

const answering = (status: number): FetchMock =>
  jest.fn(async (_url: string, _init: RequestInit) => ({ ok: status >= 200 && status < 300, status }));

describe('graceful hang-up and cold transfer', () => {
  afterEach(() => jest.useRealTimers());

  it('marks the agent leg before Flex hangs up a protected call', async () => {
    const fetch = answering(200);
    const { flex } = started(fetch);
    const { aborted } = await flex.Actions.runBefore('HangupCall', { task: voiceTask() });
    expect(aborted).toBe(false);
    expect(fetch).toHaveBeenCalledTimes(1);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe('https://flex-operator.example.com/flex/contact-centre/recovery/graceful');
    expect(init.method).toBe('POST');
    expect(init.headers).toEqual({ Authorization: 'Bearer flex-token-of-alice', 'Content-Type': 'application/json' });
    expect(JSON.parse(String(init.body))).toEqual({ conferenceSid: CONFERENCE, callSid: AGENT_CALL });
  });

  it('does not hold the hang-up up when the operator does not answer in time', async () => {
    jest.useFakeTimers();
    let signal: AbortSignal | undefined;
    // The operator never answers.
    const fetch: FetchMock = jest.fn((_url: string, init: RequestInit) => {
      signal = init.signal ?? undefined;
      return new Promise(() => undefined);
    });
    const { flex, log } = started(fetch);
    let done = false;
    const hangup = flex.Actions.runBefore('HangupCall', { task: voiceTask() }).then((r) => {
      done = true;
      return r;
    });
    // Let the listener reach the request; the hang-up is still waiting for the mark.
    await Promise.resolve();
    await Promise.resolve();
    expect(fetch).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(1499);
    await Promise.resolve();
    expect(done).toBe(false);
    // At the bound (gracefulTimeoutMs, 1500 ms by default) the hang-up goes on, not aborted.
    jest.advanceTimersByTime(1);
    const { aborted } = await hangup;
    expect(aborted).toBe(false);
    expect(signal?.aborted).toBe(true);
    expect(log.lines.warn.join(' ')).toMatch(/no answer within 1500 ms; going on/);
    expect(flex.Notifications.text(0)).toMatch(/could not be reported to flex-operator \(no answer within 1500 ms\)/);
  });

  it('honours a configured bound', async () => {
    jest.useFakeTimers();
    const fetch: FetchMock = jest.fn((_url: string, _init: RequestInit) => new Promise(() => undefined));
    const customData = validCustomData();
    customData.flexOperator.recovery.gracefulTimeoutMs = 300;
    const { flex } = started(fetch, customData);
    const hangup = flex.Actions.runBefore('HangupCall', { task: voiceTask() });
    await Promise.resolve();
    jest.advanceTimersByTime(300);
    await expect(hangup).resolves.toEqual({ aborted: false });
  });

  it.each([
    ['the operator refuses (409: no leg of this worker)', answering(409)],
    ['the operator has no recovery for the call (404)', answering(404)],
  ])('lets the hang-up go on, quietly, when %s', async (_, fetch) => {
    const { flex } = started(fetch as FetchMock);
    await expect(flex.Actions.runBefore('HangupCall', { task: voiceTask() })).resolves.toEqual({ aborted: false });
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(flex.Notifications.shown).toEqual([]);
    // The listener itself never fails.
    expect(flex.Actions.listenerErrors).toEqual([]);
  });

  it.each([
    ['the request fails', jest.fn(async () => Promise.reject(new TypeError('Failed to fetch')))],
    ['the operator is unavailable (503)', answering(503)],
    ['the operator is throttled (429)', answering(429)],
  ])('retries within the bound, then lets the hang-up go on and warns the agent, when %s', async (_, fetch) => {
    jest.useFakeTimers();
    const { flex } = started(fetch as FetchMock);
    const hangup = flex.Actions.runBefore('HangupCall', { task: voiceTask() });
    // Three retries, 100 + 200 + 400 ms apart: all within the 1500 ms bound.
    for (let i = 0; i < 20; i++) {
      await Promise.resolve();
    }
    for (const delay of RETRY_DELAYS_MS) {
      jest.advanceTimersByTime(delay);
      for (let i = 0; i < 20; i++) {
        await Promise.resolve();
      }
    }
    await expect(hangup).resolves.toEqual({ aborted: false });
    expect(fetch).toHaveBeenCalledTimes(1 + RETRY_DELAYS_MS.length);
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([NoticeId.GracefulMarkLost]);
    expect(flex.Notifications.text(0)).toMatch(/could not be reported .*could not be reached.*offered back to you/);
    expect(flex.Actions.listenerErrors).toEqual([]);
  });

  it('counts a mark that succeeds on a retry, and warns no one', async () => {
    const fetch: FetchMock = jest
      .fn()
      .mockRejectedValueOnce(new TypeError('Failed to fetch'))
      .mockResolvedValueOnce({ ok: false, status: 502 })
      .mockResolvedValue({ ok: true, status: 200 });
    const { flex } = started(fetch);
    await expect(flex.Actions.runBefore('HangupCall', { task: voiceTask() })).resolves.toEqual({ aborted: false });
    expect(fetch).toHaveBeenCalledTimes(3);
    expect(flex.Notifications.shown).toEqual([]);
  });

  it('warns the agent, without retrying, when the operator refuses the token (403)', async () => {
    const fetch = answering(403);
    const { flex } = started(fetch);
    await expect(flex.Actions.runBefore('HangupCall', { task: voiceTask() })).resolves.toEqual({ aborted: false });
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(flex.Notifications.text(0)).toMatch(/refused the request/);
  });

  it('marks a cold transfer, not a warm one', async () => {
    const fetch = answering(200);
    const { flex } = started(fetch);
    await flex.Actions.runBefore('TransferTask', { task: voiceTask(), targetSid: 'WK1', options: { mode: 'WARM' } });
    expect(fetch).not.toHaveBeenCalled();
    const { aborted } = await flex.Actions.runBefore('TransferTask', { task: voiceTask(), targetSid: 'WK1', options: { mode: 'COLD' } });
    expect(aborted).toBe(false);
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('leaves calls on unprotected workflows, and other channels, alone', async () => {
    const fetch = answering(200);
    const { flex } = started(fetch);
    await flex.Actions.runBefore('HangupCall', { task: voiceTask({ workflowSid: WORKFLOW_OTHER }) });
    await flex.Actions.runBefore('HangupCall', { task: voiceTask({ taskChannelUniqueName: 'chat' }) });
    await flex.Actions.runBefore('HangupCall', {});
    expect(fetch).not.toHaveBeenCalled();
  });

  it('finds the conference and the leg from the task attributes when Flex has no conference state', async () => {
    const fetch = answering(200);
    const { flex } = started(fetch);
    await flex.Actions.runBefore('HangupCall', { task: voiceTask({ conference: undefined }) });
    expect(JSON.parse(String(fetch.mock.calls[0][1].body))).toEqual({ conferenceSid: CONFERENCE });
  });

  it('sends no call SID the operator would refuse, and no mark without a conference or a token', async () => {
    const fetch = answering(200);
    const task = voiceTask();
    task.conference.participants[1].callSid = 'not-a-call-sid';
    const { flex } = started(fetch);
    await flex.Actions.runBefore('HangupCall', { task });
    expect(JSON.parse(String(fetch.mock.calls[0][1].body))).toEqual({ conferenceSid: CONFERENCE });

    await flex.Actions.runBefore('HangupCall', { task: voiceTask({ conference: undefined, attributes: {} }) });
    expect(fetch).toHaveBeenCalledTimes(1);

    const noToken = started(fetch, validCustomData(), '');
    await expect(noToken.flex.Actions.runBefore('HangupCall', { task: voiceTask() })).resolves.toEqual({ aborted: false });
    expect(fetch).toHaveBeenCalledTimes(1);
  });
});
