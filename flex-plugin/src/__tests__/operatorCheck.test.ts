import { NoticeId } from '../notifications';
import { CHECK_TIMEOUT_MS, checkOperator } from '../recovery/operatorCheck';
import { fakeFlex, installResolved, recordingLogger, validCustomData } from '../testing/fakeFlex';

type FetchMock = jest.Mock<Promise<{ ok: boolean; status: number }>, [string, RequestInit]>;

const answering = (status: number): FetchMock =>
  jest.fn(async (_url: string, _init: RequestInit) => ({ ok: status >= 200 && status < 300, status }));

const setUp = (fetch: FetchMock, token = 'flex-token-of-alice') => {
  const f = fakeFlex(validCustomData(), token);
  const log = recordingLogger();
  installResolved(f.flex, f.manager, { fetch, log });
  return { ...f, log };
};

const policies = () => [
  { namespace: 'contact-centre', name: 'recovery', publicUrl: 'https://flex-operator.example.com', workflowSids: [] },
];

describe('start-up check of the operator', () => {
  afterEach(() => jest.useRealTimers());

  it('asks the check route with the agent token and stays quiet when it answers', async () => {
    const fetch = answering(200);
    const { flex, log } = setUp(jest.fn());
    const results = await checkOperator(flex, policies(), 'flex-token-of-alice', fetch, log);
    expect(results.every((r) => !r.problem)).toBe(true);
    const [url, init] = fetch.mock.calls[0];
    expect(url).toBe('https://flex-operator.example.com/flex/contact-centre/recovery/check');
    expect(init.method).toBe('GET');
    expect(init.headers).toEqual({ Authorization: 'Bearer flex-token-of-alice' });
    expect(flex.Notifications.shown).toEqual([]);
  });

  it.each([
    ['refuses the token', answering(403), /refuses your Flex token \(403\)/],
    ['is not routed (an ingress 404)', answering(404), /answered 404/],
    [
      'cannot be reached',
      jest.fn(async (_url: string, _init: RequestInit) => Promise.reject(new TypeError('Failed to fetch'))) as FetchMock,
      /no answer from https:\/\/flex-operator.example.com/,
    ],
  ])('warns the agent, until closed, when the operator %s', async (_, fetch, reason) => {
    const { flex, log } = setUp(jest.fn());
    await checkOperator(flex, policies(), 'flex-token-of-alice', fetch, log);
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([NoticeId.OperatorUnreachable]);
    expect(flex.Notifications.text(0)).toMatch(reason);
    expect(flex.Notifications.text(0)).toMatch(/offered back to you/);
    expect(flex.Notifications.registered.get(NoticeId.OperatorUnreachable)?.timeout).toBe(0);
    expect(log.lines.warn.join(' ')).toMatch(/contact-centre\/recovery are not usable/);
  });

  it('warns when the operator does not answer in time', async () => {
    jest.useFakeTimers();
    const fetch: FetchMock = jest.fn((_url: string, _init: RequestInit) => new Promise(() => undefined));
    const { flex, log } = setUp(jest.fn());
    const check = checkOperator(flex, policies(), 'flex-token-of-alice', fetch, log);
    await Promise.resolve();
    jest.advanceTimersByTime(CHECK_TIMEOUT_MS);
    await check;
    expect(flex.Notifications.text(0)).toMatch(/no answer from .* within 5 s/);
  });

  it('warns without asking when Flex has no token', async () => {
    const fetch = answering(200);
    const { flex, log } = setUp(jest.fn());
    await checkOperator(flex, policies(), '', fetch, log);
    expect(fetch).not.toHaveBeenCalled();
    expect(flex.Notifications.text(0)).toMatch(/no token/);
  });

  it('runs at start when the entry point asks for it, and only then', async () => {
    const quiet = answering(200);
    setUp(quiet);
    expect(quiet).not.toHaveBeenCalled();

    const fetch = answering(403);
    const { flex, manager } = fakeFlex(validCustomData(), 'flex-token-of-alice');
    installResolved(flex, manager, { fetch, log: recordingLogger(), checkOperator: true });
    for (let i = 0; i < 10 && flex.Notifications.shown.length === 0; i++) {
      await Promise.resolve();
    }
    expect(fetch.mock.calls[0][0]).toBe('https://flex-operator.example.com/flex/contact-centre/recovery/check');
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([NoticeId.OperatorUnreachable]);
  });
});
