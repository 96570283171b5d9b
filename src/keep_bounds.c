/*-------------------------------------------------------------------------
 *
 * keep_bounds.c
 *		What bounds kept rings across the cluster: the cap on the workers
 *		they hold, the sessions waiting for a worker slot, and what ends a
 *		kept ring from outside its session (its keepalive set lower, its
 *		function dropped or revoked).
 *
 * All of it lives in the cluster-wide state (cluster_state.h), which is why
 * keeping needs one:
 *
 * - The cap.  The cluster counts the workers that idle kept rings hold
 *   (kept_workers), and each leader's entry what its ring holds of them.  A
 *   ring is kept only if the count stays within
 *   test_shm_mq_ext.max_kept_workers; whoever moves the ring out of KEPT, the
 *   leader claiming or ending it, or a worker closing it, gives its share
 *   back, once.  Nothing a session can do outside our functions touches the
 *   count, and a worker that reloads a lower cap gives back, and ends, as
 *   many rings as the new cap needs (keep_idle.c).
 *
 * - Waiting for a slot.  A session that waits for a worker slot says so each
 *   time it polls, by pushing slots_wanted_until a few polls ahead, and
 *   wakes every kept ring, whose workers then stand down.  Nothing needs
 *   undoing: once the session stops polling, the lease lapses.
 *
 * - Ends from outside.  The leader's entry holds the ring's deadline, which
 *   ring_keepalive's assign hook shortens, in the leader, however the
 *   setting changes (SET, RESET, DISCARD ALL, the end of SET LOCAL); and an
 *   event trigger ends the kept rings of a database as DROP EXTENSION runs,
 *   and those whose role may no longer execute the function that kept them
 *   as REVOKE or DROP OWNED does.  Either way the ring's workers are woken
 *   to look, and close it.
 *
 * IDENTIFICATION
 *		src/keep_bounds.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/event_trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "keep.h"

PG_FUNCTION_INFO_V1(test_shm_mq_end_unwanted_rings);

/*
 * How long a session's word that it waits for a worker slot lasts.  It says
 * so at every poll, every 10 ms (setup.c), so three polls' worth outlasts a
 * late one; and a ring is not kept for as long after the last wait.
 */
#define SLOTS_WANTED_LEASE_MS	30

static void end_kept_rings(bool whole_database);
static bool drops_this_extension(Node *parsetree);

/*
 * [L] Count a ring of nworkers workers against the cap, if it has room, and
 * note in the leader's entry what the ring holds.  Returns false, counting
 * nothing, if it has not.
 */
bool
test_shm_mq_keep_take_workers(int nworkers)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_required();
	test_shm_mq_entry *entry = test_shm_mq_my_entry();
	bool		room;

	LWLockAcquire(&state->lock, LW_EXCLUSIVE);
	room = state->kept_workers + nworkers <= test_shm_mq_max_kept_workers;
	if (room)
	{
		state->kept_workers += nworkers;
		SpinLockAcquire(&entry->mutex);
		entry->kept_workers = nworkers;
		SpinLockRelease(&entry->mutex);
	}
	LWLockRelease(&state->lock);
	return room;
}

/*
 * [L/W] Give back what a kept ring holds of the cap, leader being its
 * leader's entry: by whoever moves the ring out of KEPT.  Safe to call again;
 * cannot fail, since workers call it as they exit.
 */
void
test_shm_mq_keep_give_back(test_shm_mq_entry *leader)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();

	if (state == NULL || leader == NULL)
		return;
	LWLockAcquire(&state->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&leader->mutex);
	state->kept_workers -= leader->kept_workers;
	leader->kept_workers = 0;
	SpinLockRelease(&leader->mutex);
	LWLockRelease(&state->lock);
}

/*
 * [W] After a reload: if the cap is now below what idle rings hold, give
 * back this ring's share and return true, for the caller to close it.  One
 * ring after another, under the lock, so that just enough go.
 */
bool
test_shm_mq_keep_over_cap(test_shm_mq_entry *leader)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();
	bool		over = false;

	LWLockAcquire(&state->lock, LW_EXCLUSIVE);
	if (state->kept_workers > test_shm_mq_max_kept_workers)
	{
		SpinLockAcquire(&leader->mutex);
		over = leader->kept_workers > 0;
		state->kept_workers -= leader->kept_workers;
		leader->kept_workers = 0;
		SpinLockRelease(&leader->mutex);
	}
	LWLockRelease(&state->lock);
	return over;
}

/*
 * [L] Publish a ring about to be kept in its leader's entry: kept until
 * keep_until, by keeper_function's call, woken through worker 1.
 */
void
test_shm_mq_keep_publish(test_shm_mq_ring *ring, TimestampTz keep_until,
						 Oid keeper_function)
{
	test_shm_mq_entry *entry = test_shm_mq_my_entry();
	PGPROC	   *first = test_shm_mq_state_worker(ring->header, 1).proc;

	SpinLockAcquire(&entry->mutex);
	entry->phase = TEST_SHM_MQ_PHASE_KEPT;
	entry->keep_until = keep_until;
	entry->keeper_function = keeper_function;
	entry->end_reason = TEST_SHM_MQ_END_NONE;
	entry->wake_procno = first != NULL ? test_shm_mq_proc_number(first) : -1;
	SpinLockRelease(&entry->mutex);
}

/*
 * Wake a kept ring, leader being its leader's entry, so that its workers
 * look at the entry again.  One worker is enough: one that closes the ring
 * wakes the others.
 */
void
test_shm_mq_keep_wake(test_shm_mq_entry *leader)
{
	int			procno;

	SpinLockAcquire(&leader->mutex);
	procno = leader->phase == TEST_SHM_MQ_PHASE_KEPT ? leader->wake_procno : -1;
	SpinLockRelease(&leader->mutex);
	if (procno >= 0)
		SetLatch(&test_shm_mq_proc_of(procno)->procLatch);
}

/*
 * Does a session wait for a worker slot now, or did it a moment ago?
 */
bool
test_shm_mq_keep_slots_wanted(void)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();

	return state != NULL &&
		(TimestampTz) pg_atomic_read_u64(&state->slots_wanted_until) >
		GetCurrentTimestamp();
}

/*
 * [L] Say, while waiting for a worker slot, that we wait, and wake every
 * kept ring so that it stands down.  Call at every poll.
 */
void
test_shm_mq_keep_announce_slot_wait(void)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();
	uint64		until;
	uint64		current;
	int			procno;

	if (state == NULL)
		return;
	until = (uint64) TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 SLOTS_WANTED_LEASE_MS);
	current = pg_atomic_read_u64(&state->slots_wanted_until);
	while (current < until &&
		   !pg_atomic_compare_exchange_u64(&state->slots_wanted_until,
										   &current, until))
		;
	for (procno = 0; procno < state->nentries; procno++)
		test_shm_mq_keep_wake(&state->entries[procno]);
}

/*
 * Assign hook of test_shm_mq_ext.ring_keepalive: the session's kept ring, if
 * any, is kept no longer than the new keepalive from now, and not at all at
 * 0.  The leader is detached, so the deadline is the one in its entry, and
 * the workers are woken to read it.  Cannot fail: it runs wherever the
 * setting changes, at the end of a transaction too.
 */
void
test_shm_mq_keep_keepalive_assign(int newval, void *extra)
{
	test_shm_mq_entry *entry;
	TimestampTz until;

	if (test_shm_mq_keep_current() == NULL ||
		(entry = test_shm_mq_my_entry()) == NULL)
		return;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), newval);
	SpinLockAcquire(&entry->mutex);
	if (newval == 0)
		entry->end_reason = TEST_SHM_MQ_END_UNWANTED;
	else if (until < entry->keep_until)
		entry->keep_until = until;
	SpinLockRelease(&entry->mutex);
	test_shm_mq_keep_wake(entry);
}

/*
 * test_shm_mq_end_unwanted_rings() returns event_trigger
 *
 * Fired by the extension's event triggers: as DROP EXTENSION test_shm_mq_ext
 * starts, every kept ring of this database ends, its function about to go;
 * after REVOKE or DROP OWNED, so does every kept ring of this database whose
 * role may no longer execute the function that kept it.  Either way, before
 * the command commits: a rollback costs the rings nothing worse than being
 * built again.
 */
Datum
test_shm_mq_end_unwanted_rings(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;

	if (strcmp(trigdata->event, "ddl_command_start") != 0)
		end_kept_rings(false);
	else if (drops_this_extension(trigdata->parsetree))
		end_kept_rings(true);
	PG_RETURN_NULL();
}

/*
 * Does this statement drop this extension?
 */
static bool
drops_this_extension(Node *parsetree)
{
	DropStmt   *stmt = (DropStmt *) parsetree;
	ListCell   *cell;

	if (!IsA(parsetree, DropStmt) || stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(cell, stmt->objects)
	{
		if (strcmp(strVal(lfirst(cell)), TEST_SHM_MQ_EXTENSION_NAME) == 0)
			return true;
	}
	return false;
}

/*
 * End the kept rings of this database: all of them, or those whose role may
 * no longer execute the function that kept them.
 */
static void
end_kept_rings(bool whole_database)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_state();
	int			procno;

	if (state == NULL)
		return;
	for (procno = 0; procno < state->nentries; procno++)
	{
		test_shm_mq_entry *entry = &state->entries[procno];
		bool		kept;
		Oid			function;
		Oid			role;

		SpinLockAcquire(&entry->mutex);
		kept = entry->phase == TEST_SHM_MQ_PHASE_KEPT &&
			entry->database == MyDatabaseId;
		function = entry->keeper_function;
		role = entry->role;
		SpinLockRelease(&entry->mutex);

		if (!kept ||
			(!whole_database &&
			 SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(function)) &&
			 test_shm_mq_function_aclcheck(function, role, ACL_EXECUTE) ==
			 ACLCHECK_OK))
			continue;

		SpinLockAcquire(&entry->mutex);
		if (entry->phase == TEST_SHM_MQ_PHASE_KEPT)
			entry->end_reason = TEST_SHM_MQ_END_UNWANTED;
		SpinLockRelease(&entry->mutex);
		test_shm_mq_keep_wake(entry);
	}
}
