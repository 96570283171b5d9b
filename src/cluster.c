/*-------------------------------------------------------------------------
 *
 * cluster.c
 *		What the sessions of the whole cluster share about kept rings, without
 *		shared memory of the extension's own: how many workers idle kept
 *		rings hold, and whether any session waits for a worker slot.
 *
 * The extension need not be in shared_preload_libraries, so it has no shared
 * memory of its own.  Both facts live in the lock manager instead, as
 * advisory locks in no database (database OID 0, which no SQL-level advisory
 * lock uses), as the registration lock in setup.c does:
 *
 * - Kept-worker tickets.  test_shm_mq_ext.max_kept_workers tickets, numbered
 *   from 0, each an advisory lock.  A session keeps a ring of N workers only
 *   if it can take N tickets, at once and without waiting, as session locks;
 *   it gives them back as the ring is taken down.  The lock manager releases
 *   a session's locks when it exits, however it exits, so no count can drift.
 *
 * - The slot-waiter lock.  A session waiting for a worker slot holds it in
 *   share mode while it waits.  A session about to keep a ring, or a kept
 *   ring's worker woken between calls, probes it in exclusive mode: if the
 *   probe fails, someone waits, and the ring stands down.  The waiter also
 *   wakes every idle kept worker, each time it polls, so that they look.
 *
 * The DSM registry (PostgreSQL 17 and later) could hold a counter instead;
 * locks work on every supported major, and cost nothing to clean up.
 *
 * IDENTIFICATION
 *		src/cluster.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"

#include "keep.h"

/* Advisory lock keys; see setup.c for field 4's values 1 to 3. */
#define CLUSTER_LOCK_KEY1			0x74736d71	/* "tsmq" */
#define SLOT_WAITER_LOCK_KEY2		0x77616974	/* "wait" */
#define SLOT_WAITER_LOCK_FIELD4		4
#define KEPT_TICKET_LOCK_FIELD4		5

static void set_ticket_tag(LOCKTAG *tag, int ticket);
static void set_slot_waiter_tag(LOCKTAG *tag);

/*
 * The lock tag of kept-worker ticket number ticket.
 */
static void
set_ticket_tag(LOCKTAG *tag, int ticket)
{
	SET_LOCKTAG_ADVISORY(*tag, InvalidOid, CLUSTER_LOCK_KEY1, (uint32) ticket,
						 KEPT_TICKET_LOCK_FIELD4);
}

/*
 * The lock tag of the slot-waiter lock.
 */
static void
set_slot_waiter_tag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, InvalidOid, CLUSTER_LOCK_KEY1,
						 SLOT_WAITER_LOCK_KEY2, SLOT_WAITER_LOCK_FIELD4);
}

/*
 * Make sure the ring holds one ticket per worker, all below the current
 * test_shm_mq_ext.max_kept_workers, taking what it lacks without waiting.
 * Returns false, holding none, if there are not enough free tickets.
 *
 * Tickets taken for an earlier call stay valid while the cap has not been
 * lowered below them, and while we still hold them (DISCARD ALL and
 * pg_advisory_unlock_all() release every advisory lock of the session);
 * otherwise the ring gives them all back and tries anew.
 */
bool
test_shm_mq_kept_tickets_take(int nworkers, int *tickets, int *ntickets)
{
	int			ticket;

	for (ticket = 0; ticket < *ntickets; ticket++)
	{
		LOCKTAG		tag;

		set_ticket_tag(&tag, tickets[ticket]);
		if (tickets[ticket] >= test_shm_mq_max_kept_workers ||
			!test_shm_mq_lock_held_by_me(&tag, ExclusiveLock))
		{
			test_shm_mq_kept_tickets_give_back(tickets, ntickets);
			break;
		}
	}
	if (*ntickets == nworkers)
		return true;

	for (ticket = 0;
		 ticket < test_shm_mq_max_kept_workers && *ntickets < nworkers;
		 ticket++)
	{
		LOCKTAG		tag;

		set_ticket_tag(&tag, ticket);
		if (LockAcquire(&tag, ExclusiveLock, true, true) ==
			LOCKACQUIRE_NOT_AVAIL)
			continue;
		tickets[(*ntickets)++] = ticket;
	}

	if (*ntickets < nworkers)
	{
		test_shm_mq_kept_tickets_give_back(tickets, ntickets);
		return false;
	}
	return true;
}

/*
 * Give back every ticket the ring holds, or held before something released
 * all the session's advisory locks.  Cannot fail; safe to call again.
 */
void
test_shm_mq_kept_tickets_give_back(int *tickets, int *ntickets)
{
	while (*ntickets > 0)
	{
		LOCKTAG		tag;

		set_ticket_tag(&tag, tickets[--(*ntickets)]);
		if (test_shm_mq_lock_held_by_me(&tag, ExclusiveLock))
			LockRelease(&tag, ExclusiveLock, true);
	}
}

/*
 * Say, while waiting for a worker slot, that we wait: hold the slot-waiter
 * lock, if not yet held, and wake every idle kept worker so that it looks.
 * Call at every poll; *announced tracks whether the lock is held.
 *
 * The lock belongs to the transaction, so an error or cancel during the wait
 * drops it; test_shm_mq_slot_wait_end() drops it after a wait that ended
 * well.
 */
void
test_shm_mq_slot_wait_announce(bool *announced)
{
	uint32		kept_event = test_shm_mq_wait_event_info(TEST_SHM_MQ_WAIT_EVENT_KEPT);
	uint32		proc_number;

	if (!*announced)
	{
		LOCKTAG		tag;

		/* A probe may hold it for an instant: then try at the next poll. */
		set_slot_waiter_tag(&tag);
		*announced = LockAcquire(&tag, ShareLock, false, true) !=
			LOCKACQUIRE_NOT_AVAIL;
		if (!*announced)
			return;
	}

	/*
	 * Kept workers sleep with the kept wait event.  Before PostgreSQL 17
	 * every extension's wait events look alike, so others may be woken too;
	 * a latch allows for that.  The read of wait_event_info is unlocked, as
	 * pg_stat_activity's is: a worker that goes idle just after we looked
	 * probes the lock itself before it sleeps.
	 */
	for (proc_number = 0; proc_number < ProcGlobal->allProcCount; proc_number++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[proc_number];

		if (proc != MyProc && test_shm_mq_proc_is_background(proc) &&
			proc->wait_event_info == kept_event)
			SetLatch(&proc->procLatch);
	}
}

/*
 * A wait for worker slots that ended well: stop saying that we wait.
 */
void
test_shm_mq_slot_wait_end(bool *announced)
{
	LOCKTAG		tag;

	if (!*announced)
		return;
	set_slot_waiter_tag(&tag);
	LockRelease(&tag, ShareLock, false);
	*announced = false;
}

/*
 * Does any session wait for a worker slot?  A session that waits itself does
 * not count: the lock manager never makes a process wait for its own locks.
 *
 * Used by leaders and by kept workers, which run outside any transaction;
 * hence a session lock, held only for the instant of the probe.
 */
bool
test_shm_mq_slot_waiter_present(void)
{
	LOCKTAG		tag;

	set_slot_waiter_tag(&tag);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, ExclusiveLock, true);
	return false;
}
