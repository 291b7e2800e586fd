import { ReservationLike } from '../flexApi';
import { NoticeId } from '../notifications';

import { CONFERENCE, fakeFlex, installResolved, recordingLogger, validCustomData } from '../testing/fakeFlex';

const reservation = (sid: string, attributes: any, status = 'pending'): ReservationLike => ({
  sid,
  status,
  task: { sid: `WT${sid.slice(2)}`, attributes, taskChannelUniqueName: 'default' },
});

const LEG = 'CA' + 'b'.repeat(32);
const PING = {
  disconnectedConferenceSid: CONFERENCE,
  disconnectedWorkerSid: 'WK1',
  disconnectedTaskSid: 'WT1',
  flexOperatorRecovery: { role: 'ping', conferenceSid: CONFERENCE, disconnectedCallSid: LEG },
};
const RECONNECT = {
  ...PING,
  isReconnect: true,
  targetWorkerSid: 'WK1',
  conference: {},
  flexOperatorRecovery: { role: 'reconnect', conferenceSid: CONFERENCE, disconnectedCallSid: LEG },
};

// Settles the promise chains started by an event (the accept and its notice).
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

const started = (customData = validCustomData()) => {
  const f = fakeFlex(customData);
  const log = recordingLogger();
  return { ...f, log, go: () => installResolved(f.flex, f.manager, { fetch: jest.fn(), log }) };
};

describe('auto-accept of recovery tasks', () => {
  it('accepts a Recovery Ping task offered to the agent, with a notice', async () => {
    const { flex, manager, go } = started();
    go();
    manager.workerClient.emit('reservationCreated', reservation('WR01', PING));
    await settle();
    expect(flex.Actions.invoked).toEqual([{ name: 'AcceptTask', payload: { sid: 'WR01' } }]);
    expect(flex.Notifications.shown.map((n) => n.id)).toEqual([NoticeId.PingAccepted]);
  });

  it('accepts a reconnect task offered to the agent, with a notice', async () => {
    const { flex, manager, go } = started();
    go();
    manager.workerClient.emit('reservationCreated', reservation('WR02', RECONNECT));
    await settle();
    expect(flex.Actions.invoked).toEqual([{ name: 'AcceptTask', payload: { sid: 'WR02' } }]);
    expect(flex.Notifications.text(0)).toBe('Reconnected: the customer is back on your call.');
  });

  it('accepts an offer already waiting when the page loads, once', async () => {
    const { flex, manager, go } = started();
    manager.workerClient.reservations.set('WR03', reservation('WR03', PING));
    manager.workerClient.reservations.set('WR04', reservation('WR04', PING, 'accepted'));
    go();
    manager.workerClient.emit('reservationCreated', manager.workerClient.reservations.get('WR03'));
    await settle();
    expect(flex.Actions.invoked).toEqual([{ name: 'AcceptTask', payload: { sid: 'WR03' } }]);
  });

  it('leaves customer tasks to the agent', async () => {
    const { flex, manager, go } = started();
    go();
    manager.workerClient.emit('reservationCreated', reservation('WR05', { from: '+15550001111' }));
    manager.workerClient.emit('reservationCreated', reservation('WR06', { disconnectedConferenceSid: '' }));
    // A customer's task whose attributes were copied from a reconnect task (a transfer) carries the
    // seed's flags but no marker of its own: it is not auto-accepted.
    manager.workerClient.emit(
      'reservationCreated',
      reservation('WR07', { disconnectedConferenceSid: CONFERENCE, isReconnect: true, targetWorkerSid: 'WK1' }),
    );
    await settle();
    expect(flex.Actions.invoked).toEqual([]);
  });

  it('says why when the accept fails, and tries again on the next offer event', async () => {
    const { flex, manager, log, go } = started();
    flex.Actions.builtIn = jest.fn(async () => Promise.reject(new Error('reservation is no longer pending')));
    go();
    const r = reservation('WR07', PING);
    manager.workerClient.emit('reservationCreated', r);
    await settle();
    expect(log.lines.warn.join(' ')).toMatch(/could not accept ping task WT07.*no longer pending/);
    expect(flex.Notifications.shown).toEqual([]);
    manager.workerClient.emit('reservationCreated', r);
    await settle();
    expect(flex.Actions.invoked).toHaveLength(2);
  });

  it('is off when the configuration says so', async () => {
    const customData = validCustomData();
    customData.flexOperator.recovery.autoAccept = false;
    const { flex, manager, go } = started(customData);
    go();
    manager.workerClient.emit('reservationCreated', reservation('WR08', PING));
    await settle();
    expect(flex.Actions.invoked).toEqual([]);
  });
});
