/*-------------------------------------------------------------------------
 *
 * keep_idle.c
 *		A kept ring's workers between calls: sleep until the next call's
 *		first message, and close the ring once it is no longer wanted.
 *
 * Between the calls of a kept ring each worker is idle, connected, and says
 * in pg_stat_activity whose ring it keeps and until when.  It sleeps until
 * the next call's first message reaches it, or until the ring's deadline,
 * which lives in the leader's entry of the cluster-wide state, since others
 * may shorten it (keep_bounds.c).  The first worker to find the ring no
 * longer wanted closes it and wakes the others, and all leave:
 *
 * - its deadline has passed: it expires;
 * - someone ended it early (its keepalive set to 0, its function dropped or
 *   revoked), or a reload lowered the cap below what idle rings hold, or
 *   turned the keepalive the workers read from positive to 0, or worker 1,
 *   which looks every ROLE_CHECK_INTERVAL_MS, finds its role dropped;
 * - a session waits for a worker slot: it stands down.
 *
 * A worker that leaves a kept ring for any other reason, an error or a
 * signal, pins its segment and marks it lost, so that the leader's next
 * call can say what became of it.  Every such move is ring_state.c's; the
 * worker that makes it gives back the ring's share of the cap.
 *
 * IDENTIFICATION
 *		src/keep_idle.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "keep.h"
#include "stats.h"

/*
 * How often worker 1 of a kept ring looks whether the ring's role still
 * exists: DROP ROLE reaches no process of ours, and runs no event trigger.
 * Half the second in which the README promises the ring goes.
 */
#define ROLE_CHECK_INTERVAL_MS	500

/* What a worker's detach callback needs to know. */
typedef struct watched_worker
{
	test_shm_mq_header *header;
	int			worker_number;
} watched_worker;

static watched_worker watched;

/* When worker 1 last looked for its ring's role. */
static TimestampTz role_checked_at = 0;

static test_shm_mq_counter why_unwanted(test_shm_mq_entry *leader,
										TimestampTz now,
										TimestampTz *keep_until);
static bool reload_ends_ring(test_shm_mq_entry *leader);
static bool role_dropped(test_shm_mq_entry *leader, TimestampTz now);
static void report_idle(test_shm_mq_header *header, TimestampTz keep_until);
static void closed_kept_ring(test_shm_mq_header *header,
							 test_shm_mq_entry *leader,
							 test_shm_mq_counter why);
static void leaving_kept_ring(dsm_segment *segment, Datum arg);

/*
 * From now on, should this worker leave the ring while it is kept, mark the
 * ring lost (see leaving_kept_ring()).  Registered after the worker's queues
 * are attached, so that on the way out it runs before their detach
 * callbacks: the ring must read as lost before any neighbour sees a queue
 * go.
 */
void
test_shm_mq_keep_watch_worker(dsm_segment *segment,
							  test_shm_mq_header *header, int worker_number)
{
	watched.header = header;
	watched.worker_number = worker_number;
	on_dsm_detach(segment, leaving_kept_ring, (Datum) 0);
}

/*
 * Is the ring kept, with no call?  Read without the lock: what the worker
 * then does is decided again, under it, by test_shm_mq_keep_idle().
 */
bool
test_shm_mq_keep_between_calls(test_shm_mq_header *header)
{
	return test_shm_mq_state_peek(header) == TEST_SHM_MQ_RING_KEPT;
}

/*
 * Sleep while the ring is kept between calls: until a call's first message
 * wakes us, or something makes us look again.  Returns false if the ring is
 * closed, by us or another; true when the worker is to look at its queues
 * again.  just_idle says the worker has only now gone idle: it counts what
 * its waits came to, and says whose ring it keeps.  worker_number says
 * which worker we are: worker 1 also looks for the ring's role.
 *
 * The leader claims a kept ring under the same lock, so it finds the ring
 * either still kept, and the workers staying, or closed, and builds another.
 */
bool
test_shm_mq_keep_idle(test_shm_mq_header *header, int worker_number,
					  bool just_idle)
{
	test_shm_mq_entry *leader = test_shm_mq_entry_of(header->leader);
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz keep_until;
	test_shm_mq_counter why;
	uint32		state;
	long		sleep_ms;

	if (just_idle)
		test_shm_mq_define_settings();	/* for reload_ends_ring() */
	why = why_unwanted(leader, now, &keep_until);
	state = test_shm_mq_state_expire(header, why != 0);

	if (state == TEST_SHM_MQ_RING_KEPT && why != 0)
	{
		closed_kept_ring(header, leader, why);
		return false;
	}
	if (state != TEST_SHM_MQ_RING_KEPT)
		return !test_shm_mq_state_closed(header);

	if (just_idle)
	{
		test_shm_mq_stats_count_worker_waits();
		report_idle(header, keep_until);
	}

	/* Round up, so as to wake no earlier than the deadline. */
	sleep_ms = (long) ((keep_until - now + 999) / 1000);
	if (worker_number == 1)
		sleep_ms = Min(sleep_ms, ROLE_CHECK_INTERVAL_MS);
	test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_KEPT, sleep_ms);
	return !test_shm_mq_state_closed(header);
}

/*
 * Why the ring is no longer wanted, as the counter that counts it, or 0 if
 * it still is; sets *keep_until to its deadline.
 */
static test_shm_mq_counter
why_unwanted(test_shm_mq_entry *leader, TimestampTz now,
			 TimestampTz *keep_until)
{
	test_shm_mq_end_reason end_reason;

	SpinLockAcquire(&leader->mutex);
	*keep_until = leader->keep_until;
	end_reason = leader->end_reason;
	SpinLockRelease(&leader->mutex);

	if (end_reason != TEST_SHM_MQ_END_NONE || reload_ends_ring(leader) ||
		role_dropped(leader, now))
		return TEST_SHM_MQ_RINGS_ENDED;
	if (now >= *keep_until)
		return TEST_SHM_MQ_RINGS_EXPIRED;
	if (test_shm_mq_keep_slots_wanted())
		return TEST_SHM_MQ_RINGS_STOOD_DOWN;
	return 0;
}

/*
 * Take in a reload, if one is pending: does it end the ring?  It does if
 * the cap is now below what idle rings hold, and this ring's share is given
 * back to make up for it, or if it turned the keepalive this worker reads
 * from positive to 0.
 */
static bool
reload_ends_ring(test_shm_mq_entry *leader)
{
	int			keepalive_before = test_shm_mq_ring_keepalive;

	if (!ConfigReloadPending)
		return false;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	if (keepalive_before > 0 && test_shm_mq_ring_keepalive == 0)
		return true;
	return test_shm_mq_keep_over_cap(leader);
}

/*
 * Worker 1, every ROLE_CHECK_INTERVAL_MS: has the ring's role been dropped?
 */
static bool
role_dropped(test_shm_mq_entry *leader, TimestampTz now)
{
	Oid			role;
	bool		exists;

	if (watched.worker_number != 1 ||
		!TimestampDifferenceExceeds(role_checked_at, now,
									ROLE_CHECK_INTERVAL_MS))
		return false;
	role_checked_at = now;

	SpinLockAcquire(&leader->mutex);
	role = leader->role;
	SpinLockRelease(&leader->mutex);

	StartTransactionCommand();
	exists = SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role));
	CommitTransactionCommand();
	return !exists;
}

/*
 * Say in pg_stat_activity whose ring this worker keeps, and until when.
 */
static void
report_idle(test_shm_mq_header *header, TimestampTz keep_until)
{
	char		activity[128];

	snprintf(activity, sizeof(activity),
			 "kept for the next call of PID %d, until %s",
			 (int) header->leader_pid, timestamptz_to_str(keep_until));
	pgstat_report_activity(STATE_IDLE, activity);
}

/*
 * We closed a kept ring, for the reason why counts: give back its share of
 * the cap, show it closing, count it, and wake the other workers to leave.
 */
static void
closed_kept_ring(test_shm_mq_header *header, test_shm_mq_entry *leader,
				 test_shm_mq_counter why)
{
	test_shm_mq_keep_give_back(leader);
	SpinLockAcquire(&leader->mutex);
	if (leader->phase == TEST_SHM_MQ_PHASE_KEPT)
		leader->phase = TEST_SHM_MQ_PHASE_CLOSING;
	SpinLockRelease(&leader->mutex);
	test_shm_mq_count(why, 1);
	test_shm_mq_state_wake_workers(header);
	elog(DEBUG1, "%s closes its kept ring", MyBgworkerEntry->bgw_name);
}

/*
 * on_dsm_detach callback: leaving a ring that is still kept, before it is
 * unwanted, means something went wrong with us: mark the ring lost, naming
 * us, with the segment pinned so that our error report outlives us, for the
 * leader's next call to read.  The pin comes first, so that it is there
 * whenever the leader finds the ring lost, and only one worker takes it;
 * the leader takes it over.  An unwanted ring is only closed.
 */
static void
leaving_kept_ring(dsm_segment *segment, Datum arg)
{
	test_shm_mq_header *header = watched.header;
	test_shm_mq_entry *leader;
	TimestampTz keep_until;
	bool		unwanted;

	if (!test_shm_mq_keep_between_calls(header) ||
		(leader = test_shm_mq_entry_of(header->leader)) == NULL)
		return;
	SpinLockAcquire(&leader->mutex);
	keep_until = leader->keep_until;
	unwanted = leader->end_reason != TEST_SHM_MQ_END_NONE;
	SpinLockRelease(&leader->mutex);
	unwanted = unwanted || GetCurrentTimestamp() >= keep_until;

	if (unwanted)
	{
		if (test_shm_mq_state_expire(header, true) == TEST_SHM_MQ_RING_KEPT)
			closed_kept_ring(header, leader, TEST_SHM_MQ_RINGS_EXPIRED);
		return;
	}
	if (!test_shm_mq_state_about_to_lose(header, watched.worker_number,
										 false))
		return;
	dsm_pin_segment(segment);
	if (!test_shm_mq_state_lose(header))
	{
		dsm_unpin_segment(dsm_segment_handle(segment));
		return;
	}
	test_shm_mq_keep_give_back(leader);
	SpinLockAcquire(&leader->mutex);
	leader->phase = TEST_SHM_MQ_PHASE_LOST;
	SpinLockRelease(&leader->mutex);
	test_shm_mq_count(TEST_SHM_MQ_RINGS_LOST, 1);
}
