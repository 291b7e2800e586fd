package twiliosim

func reservationFilter(rq *request, all []*reservation) []*reservation {
	if v := rq.str("ReservationStatus"); v != "" {
		all = filter(all, func(r *reservation) bool { return r.status == v })
	}
	if v := rq.str("WorkerSid"); v != "" {
		all = filter(all, func(r *reservation) bool { return r.worker.sid == v })
	}
	return all
}

func (s *Sim) listWorkerReservations(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	w, err := s.workerOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	all := filter(ws.reservations.list(), func(r *reservation) bool { return r.worker == w })
	return listPage(s, rq, "reservations", reservationFilter(rq, all), func(r *reservation) any { return s.reservationJSON(ws, r) })
}

func (s *Sim) listTaskReservations(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	t, err := s.taskOf(rq, ws)
	if err != nil {
		return reply{}, err
	}
	return listPage(s, rq, "reservations", reservationFilter(rq, t.reservations), func(r *reservation) any { return s.reservationJSON(ws, r) })
}

func (s *Sim) reservationOf(rq *request, ws *workspace, belongs func(*reservation) bool) (*reservation, error) {
	r, ok := ws.reservations.get(rq.path("res"))
	if !ok || !belongs(r) {
		return nil, errNotFound(rq.r.URL.Path)
	}
	return r, nil
}

func (s *Sim) fetchWorkerReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.worker.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return withETag(s.reservationJSON(ws, r), r.version)
}

func (s *Sim) fetchTaskReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.task.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return withETag(s.reservationJSON(ws, r), r.version)
}

func (s *Sim) updateWorkerReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.worker.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return s.updateReservation(rq, ws, r)
}

func (s *Sim) updateTaskReservation(rq *request) (reply, error) {
	ws, err := s.wsOf(rq)
	if err != nil {
		return reply{}, err
	}
	r, err := s.reservationOf(rq, ws, func(r *reservation) bool { return r.task.sid == rq.path("sid") })
	if err != nil {
		return reply{}, err
	}
	return s.updateReservation(rq, ws, r)
}

// updateReservation applies ReservationStatus or an Instruction, then the
// optional WorkerActivitySid, as TaskRouter does.
func (s *Sim) updateReservation(rq *request, ws *workspace, r *reservation) (reply, error) {
	if err := rq.ifMatch(r.version, "Reservation"); err != nil {
		return reply{}, err
	}
	var act *activity
	if v := rq.str("WorkerActivitySid"); v != "" {
		a, ok := ws.activities.get(v)
		if !ok {
			return reply{}, errBad("WorkerActivitySid %s is not an activity of this workspace", v)
		}
		act = a
	}
	status, instruction := rq.str("ReservationStatus"), rq.str("Instruction")
	var opErr error
	switch {
	case instruction == "conference":
		opts, err := conferenceInstruction(rq)
		if err != nil {
			return reply{}, err
		}
		opErr = s.flexAccept(ws, r, opts)
	case instruction != "":
		return reply{}, errBad("Instruction %q is not modelled by the simulator (only conference)", instruction)
	case status == resAccepted:
		opErr = s.acceptReservation(ws, r)
	case status == resRejected:
		if r.status != resPending {
			opErr = errBad("reservation %s is %s, not pending", r.sid, r.status)
		} else {
			s.endReservation(ws, r, resRejected)
		}
	case status == resWrapping:
		opErr = s.wrapReservation(ws, r)
	case status == resCompleted:
		opErr = s.completeReservation(ws, r)
	case status != "":
		return reply{}, errBad("ReservationStatus %q cannot be set through the API", status)
	}
	if opErr != nil {
		return reply{}, asBad(opErr)
	}
	if act != nil {
		s.setWorkerActivity(ws, r.worker, act, false)
	}
	s.route(ws)
	return withETag(s.reservationJSON(ws, r), r.version)
}

func asBad(err error) error {
	if _, isAPI := err.(*apiError); isAPI {
		return err
	}
	return errBad("%v", err)
}
