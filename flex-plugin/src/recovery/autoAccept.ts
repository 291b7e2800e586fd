// Accept the operator's Recovery Ping and reconnect tasks offered to this agent, so that an agent
// whose page reloaded picks the call back up without looking for it; a notice says what happened.
import { FlexApi, Logger, ReservationLike, WorkerLike } from '../flexApi';
import { NoticeId } from '../notifications';
import { taskRole } from './taskRoles';

export function installAutoAccept(flex: FlexApi, worker: WorkerLike, log: Logger): void {
  const handled = new Set<string>();
  const consider = (reservation: ReservationLike): void => {
    if (reservation?.status !== 'pending' || handled.has(reservation.sid)) {
      return;
    }
    const role = taskRole(reservation.task?.attributes);
    if (role === 'customer') {
      return;
    }
    handled.add(reservation.sid);
    log.debug(`flex-operator: accepting ${role} task ${reservation.task.sid} (reservation ${reservation.sid})`);
    flex.Actions.invokeAction('AcceptTask', { sid: reservation.sid }).then(
      () => flex.Notifications.showNotification(role === 'ping' ? NoticeId.PingAccepted : NoticeId.ReconnectAccepted),
      (e: unknown) => {
        handled.delete(reservation.sid);
        log.warn(`flex-operator: could not accept ${role} task ${reservation.task.sid}:`, e);
      },
    );
  };
  worker.on('reservationCreated', consider);
  // A page that loaded while the offer was already out never sees its reservationCreated.
  worker.reservations.forEach(consider);
}
