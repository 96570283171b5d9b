/*-------------------------------------------------------------------------
 *
 * ring_state.c
 *		Where a ring is in its life, and every move between states, for the
 *		leader and the workers alike.  No other file writes the header's
 *		state, ready_workers, lost_worker or workers.
 *
 * A ring is OPEN while it is set up and while a call uses it.  With
 * test_shm_mq_ext.ring_keepalive set, a successful call leaves it KEPT: the
 * leader detaches, and the workers sleep until its keepalive has passed
 * (keep.h keeps the deadline).  The leader's next call of the same shape
 * attaches again and claims it; if none comes in time, the first worker to
 * wake after the deadline closes it (it expires).  A
 * worker woken because another session waits for a worker slot closes it
 * too (it stands down).  A worker that leaves a KEPT ring before keep_until
 * for any other reason, an error or a signal, pins the segment and marks the
 * ring LOST, naming itself, so that its error report is still there when the
 * leader's next call comes to read it; the leader, ending the kept ring,
 * takes the pin over and unpins it.  Only OPEN -> KEPT -> OPEN can happen
 * more than once.
 *
 *                         keep [L]
 *           +-------------------------------------+
 *           |                                     v
 *  create  OPEN <----------- claim [L] --------- KEPT ---- lose [W] ----> LOST
 *  ------>  |  ^                                  |                        |
 *           |  join [W], only while OPEN          | expire [W]             |
 *           |                                     | stand down [W]         |
 *           | close [L]                           | close, end [L]         | end [L]
 *           v                                     v                        |
 *         CLOSED <--------------------------------+------------------------+
 *
 * [L] the leader makes the move, [W] a worker.  Workers leave as soon as
 * they see the ring CLOSED or LOST, and one that has not joined by then never
 * joins.  Every move is made holding the header's mutex, so that the leader
 * claiming a kept ring and a worker closing it cannot both succeed: the ring
 * is either claimed or closed.
 *
 * IDENTIFICATION
 *		src/ring_state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"

#include "test_shm_mq_ext.h"

/*
 * join [W]: take our place in the ring, recording our PID and PGPROC so that
 * the leader can name us and wake us.  Returns false, recording nothing, if
 * the ring is no longer OPEN; the leader then will not wake us, and needs
 * not.
 */
bool
test_shm_mq_state_join(test_shm_mq_header *header, int worker_number)
{
	bool		open;

	SpinLockAcquire(&header->mutex);
	open = pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_OPEN;
	if (open)
	{
		header->workers[worker_number - 1].pid = MyProcPid;
		header->workers[worker_number - 1].proc = MyProc;
	}
	SpinLockRelease(&header->mutex);
	return open;
}

/*
 * [W] Count ourselves ready, all our queues attached, and wake the leader.
 */
void
test_shm_mq_state_count_ready(test_shm_mq_header *header)
{
	SpinLockAcquire(&header->mutex);
	header->ready_workers++;
	SpinLockRelease(&header->mutex);
	SetLatch(&header->leader->procLatch);
}

/*
 * [L] How many workers have counted themselves ready.
 */
int
test_shm_mq_state_ready_workers(test_shm_mq_header *header)
{
	int			ready;

	SpinLockAcquire(&header->mutex);
	ready = header->ready_workers;
	SpinLockRelease(&header->mutex);
	return ready;
}

/*
 * close [L]: the ring is being taken down, from whatever state it is in.
 */
void
test_shm_mq_state_close(test_shm_mq_header *header)
{
	SpinLockAcquire(&header->mutex);
	pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
	SpinLockRelease(&header->mutex);
}

/*
 * keep [L]: after a successful call, leave the ring to its workers.
 */
void
test_shm_mq_state_keep(test_shm_mq_header *header)
{
	SpinLockAcquire(&header->mutex);
	pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_KEPT);
	SpinLockRelease(&header->mutex);
}

/*
 * claim [L]: open a kept ring for the next call.  Returns the state found;
 * only if that is TEST_SHM_MQ_RING_KEPT is the ring now OPEN, and a worker
 * that was about to mark it lost will not (see test_shm_mq_state_lose()).
 */
uint32
test_shm_mq_state_claim(test_shm_mq_header *header)
{
	uint32		state;

	SpinLockAcquire(&header->mutex);
	state = pg_atomic_read_u32(&header->state);
	if (state == TEST_SHM_MQ_RING_KEPT)
	{
		pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_OPEN);
		header->lost_worker = 0;
	}
	SpinLockRelease(&header->mutex);
	return state;
}

/*
 * end [L]: close a ring that was kept, before taking it down.  Returns the
 * state found.  If that is LOST, the worker that marked it so had pinned the
 * segment first, and the caller is to unpin it; only this move leaves LOST,
 * so the pin is handed over once.
 */
uint32
test_shm_mq_state_end_kept(test_shm_mq_header *header)
{
	uint32		state;

	SpinLockAcquire(&header->mutex);
	state = pg_atomic_read_u32(&header->state);
	pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
	SpinLockRelease(&header->mutex);
	return state;
}

/*
 * expire [W]: close a kept ring that is no longer wanted, its keepalive
 * passed or ended early, if expired says so.  Returns the state found: if
 * that is TEST_SHM_MQ_RING_KEPT and expired is set, we closed the ring.
 */
uint32
test_shm_mq_state_expire(test_shm_mq_header *header, bool expired)
{
	uint32		state;

	SpinLockAcquire(&header->mutex);
	state = pg_atomic_read_u32(&header->state);
	if (state == TEST_SHM_MQ_RING_KEPT && expired)
		pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
	SpinLockRelease(&header->mutex);
	return state;
}

/*
 * stand down [W]: close a kept ring so that its workers' slots go to a
 * session that waits for one.  Returns whether we closed it: false if the
 * leader claimed it first, or someone closed it.
 */
bool
test_shm_mq_state_stand_down(test_shm_mq_header *header)
{
	bool		closed = false;

	SpinLockAcquire(&header->mutex);
	if (pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_KEPT)
	{
		pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
		closed = true;
	}
	SpinLockRelease(&header->mutex);
	return closed;
}

/*
 * [W] We are leaving a ring that is still kept.  Before its keepalive has
 * passed (expired says whether it has) that means something went wrong
 * with us, and the ring is to be marked LOST.  Returns true if we are to do
 * that: the caller pins the segment, so that our error report outlives us,
 * then calls test_shm_mq_state_lose().  Only one worker is given the pin to
 * take; after the keepalive the ring only expires.
 */
bool
test_shm_mq_state_about_to_lose(test_shm_mq_header *header,
								int worker_number, bool expired)
{
	bool		losing = false;

	SpinLockAcquire(&header->mutex);
	if (pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_KEPT)
	{
		if (expired)
			pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
		else if (header->lost_worker == 0)
		{
			header->lost_worker = worker_number;
			losing = true;
		}
	}
	SpinLockRelease(&header->mutex);
	return losing;
}

/*
 * lose [W]: with the segment pinned, mark the ring LOST.  Returns false if
 * it is no longer KEPT, the leader having claimed it or someone having
 * closed it meanwhile: the caller then unpins.  So a LOST ring's segment is
 * always pinned.
 */
bool
test_shm_mq_state_lose(test_shm_mq_header *header)
{
	bool		lost = false;

	SpinLockAcquire(&header->mutex);
	if (pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_KEPT)
	{
		pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_LOST);
		lost = true;
	}
	SpinLockRelease(&header->mutex);
	return lost;
}

/*
 * [L] The worker that left a kept ring, or 0 if none has.
 */
int
test_shm_mq_state_lost_worker(test_shm_mq_header *header)
{
	int			lost_worker;

	SpinLockAcquire(&header->mutex);
	lost_worker = header->lost_worker;
	SpinLockRelease(&header->mutex);
	return lost_worker;
}

/*
 * Is the ring closed, or lost, so that its workers leave?  Read without the
 * lock, as test_shm_mq_state_peek() does.
 */
bool
test_shm_mq_state_closed(test_shm_mq_header *header)
{
	uint32		state = pg_atomic_read_u32(&header->state);

	return state == TEST_SHM_MQ_RING_CLOSED || state == TEST_SHM_MQ_RING_LOST;
}

/*
 * The ring's state, read without the lock: cheap enough to ask after every
 * wait, since the state changes seldom and its cache line stays shared.  A
 * decision taken on it is made again, under the lock, by one of the moves
 * above.
 */
uint32
test_shm_mq_state_peek(test_shm_mq_header *header)
{
	return pg_atomic_read_u32(&header->state);
}

/*
 * What the ring holds about a worker: its PID and PGPROC, 0 and NULL if it
 * has not joined.
 */
test_shm_mq_worker_process
test_shm_mq_state_worker(test_shm_mq_header *header, int worker_number)
{
	test_shm_mq_worker_process process;

	SpinLockAcquire(&header->mutex);
	process = header->workers[worker_number - 1];
	SpinLockRelease(&header->mutex);
	return process;
}

/*
 * Wake every worker that has joined the ring, but ourselves, to look at its
 * state.  One that has exited since it joined may have left its PGPROC to
 * another process, which then gets a spurious wake-up; latches allow for
 * those.
 */
void
test_shm_mq_state_wake_workers(test_shm_mq_header *header)
{
	int			worker;

	for (worker = 1; worker <= header->workers_total; worker++)
	{
		PGPROC	   *proc = test_shm_mq_state_worker(header, worker).proc;

		if (proc != NULL && proc != MyProc)
			SetLatch(&proc->procLatch);
	}
}
