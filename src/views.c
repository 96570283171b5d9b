/*-------------------------------------------------------------------------
 *
 * views.c
 *		SQL functions over the cluster-wide state: test_shm_mq_rings(), one
 *		row per live ring, test_shm_mq_stats(), the counters, and
 *		test_shm_mq_stats_reset().  The views of the same names are built
 *		on the first two.
 *
 * A role sees the rings of roles whose privileges it has, as with
 * pg_stat_activity; superusers and members of pg_read_all_stats see all.
 * Each entry is copied under its own lock, so a row never mixes two moments
 * of one ring; rows of different rings may be of different moments.
 *
 * IDENTIFICATION
 *		src/views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "cluster_state.h"
#include "compat.h"

PG_FUNCTION_INFO_V1(test_shm_mq_rings);
PG_FUNCTION_INFO_V1(test_shm_mq_stats);
PG_FUNCTION_INFO_V1(test_shm_mq_stats_reset);

#define RINGS_COLUMNS	15

/* The phases' names, as test_shm_mq_rings shows them. */
static const char *const phase_names[] = {
	[TEST_SHM_MQ_PHASE_NONE] = NULL,
	[TEST_SHM_MQ_PHASE_STARTING] = "starting",
	[TEST_SHM_MQ_PHASE_RUNNING] = "running",
	[TEST_SHM_MQ_PHASE_KEPT] = "kept",
	[TEST_SHM_MQ_PHASE_CLOSING] = "closing",
	[TEST_SHM_MQ_PHASE_LOST] = "lost",
};

static bool may_see(Oid role);
static int	collect_workers(test_shm_mq_cluster *state, int leader_procno,
							uint64 ring_number, Datum *pids);
static void ring_row(Tuplestorestate *store, TupleDesc tupdesc,
					 const test_shm_mq_entry *ring, Datum *pids,
					 int npids);
static char *failures_json(test_shm_mq_cluster *state);

/*
 * test_shm_mq_rings() returns setof record: see the test_shm_mq_rings view.
 *
 * A ring closing with none of its workers left has no row: its leader
 * forgets it only at its next call, but the ring is gone.
 */
Datum
test_shm_mq_rings(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	test_shm_mq_cluster *state = test_shm_mq_cluster_required();
	Datum	   *pids;
	int			procno;

	InitMaterializedSRF(fcinfo, 0);
	pids = palloc(sizeof(Datum) * state->nentries);
	for (procno = 0; procno < state->nentries; procno++)
	{
		test_shm_mq_entry ring;
		int			npids;

		SpinLockAcquire(&state->entries[procno].mutex);
		ring = state->entries[procno];
		SpinLockRelease(&state->entries[procno].mutex);

		if (ring.pid == 0 || ring.phase == TEST_SHM_MQ_PHASE_NONE ||
			!may_see(ring.role))
			continue;
		npids = collect_workers(state, procno, ring.ring_number, pids);
		if (npids == 0 && ring.phase == TEST_SHM_MQ_PHASE_CLOSING)
			continue;
		ring_row(rsinfo->setResult, rsinfo->setDesc, &ring, pids, npids);
	}
	return (Datum) 0;
}

/*
 * May the current role see a ring of this role?
 */
static bool
may_see(Oid role)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) ||
		has_privs_of_role(GetUserId(), role);
}

/* A worker found in the state: its number and PID. */
typedef struct found_worker
{
	int			number;
	pid_t		pid;
} found_worker;

/* qsort comparator: found workers by number. */
static int
compare_workers(const void *a, const void *b)
{
	return ((const found_worker *) a)->number -
		((const found_worker *) b)->number;
}

/*
 * The PIDs of the workers that have joined one leader's ring, in worker
 * order, into pids; returns how many.
 */
static int
collect_workers(test_shm_mq_cluster *state, int leader_procno,
				uint64 ring_number, Datum *pids)
{
	found_worker *found = palloc(sizeof(found_worker) * state->nentries);
	int			nfound = 0;
	int			procno;
	int			i;

	for (procno = 0; procno < state->nentries; procno++)
	{
		test_shm_mq_entry *entry = &state->entries[procno];

		SpinLockAcquire(&entry->mutex);
		if (entry->pid != 0 && entry->leader_procno == leader_procno &&
			entry->ring_number == ring_number)
		{
			found[nfound].number = entry->worker_number;
			found[nfound].pid = entry->pid;
			nfound++;
		}
		SpinLockRelease(&entry->mutex);
	}
	qsort(found, nfound, sizeof(found_worker), compare_workers);
	for (i = 0; i < nfound; i++)
		pids[i] = Int32GetDatum(found[i].pid);
	pfree(found);
	return nfound;
}

/*
 * Add one ring's row.
 */
static void
ring_row(Tuplestorestate *store, TupleDesc tupdesc,
		 const test_shm_mq_entry *ring, Datum *pids, int npids)
{
	Datum		values[RINGS_COLUMNS];
	bool		nulls[RINGS_COLUMNS];
	int			col = 0;

	memset(nulls, 0, sizeof(nulls));
	values[col++] = Int32GetDatum(ring->pid);
	values[col++] = ObjectIdGetDatum(ring->role);
	values[col] = ObjectIdGetDatum(ring->database);
	nulls[col++] = !OidIsValid(ring->database);
	values[col++] = Int32GetDatum(ring->nworkers);
	values[col++] = PointerGetDatum(construct_array(pids, npids, INT4OID,
													sizeof(int32), true,
													TYPALIGN_INT));
	values[col++] = Int64GetDatum(ring->queue_size);
	values[col++] = CStringGetTextDatum(test_shm_mq_wait_strategy_name(ring->strategy));
	values[col++] = CStringGetTextDatum(phase_names[ring->phase]);
	values[col++] = Int64GetDatum(ring->calls);
	values[col++] = Int64GetDatum(ring->messages);
	values[col++] = Int64GetDatum(ring->bytes);
	values[col++] = Int64GetDatum(ring->bytes_by_reference);
	values[col++] = TimestampTzGetDatum(ring->started);
	values[col] = TimestampTzGetDatum(ring->last_call);
	nulls[col++] = ring->last_call == 0;
	values[col] = TimestampTzGetDatum(ring->keep_until);
	nulls[col++] = ring->phase != TEST_SHM_MQ_PHASE_KEPT;
	Assert(col == RINGS_COLUMNS);

	tuplestore_putvalues(store, tupdesc, values, nulls);
}

/*
 * test_shm_mq_stats() returns record: see the test_shm_mq_stats view.
 */
Datum
test_shm_mq_stats(PG_FUNCTION_ARGS)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_required();
	Datum		values[TEST_SHM_MQ_COUNTERS + 2];
	bool		nulls[TEST_SHM_MQ_COUNTERS + 2];
	TupleDesc	tupdesc;
	int			col = 0;
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	/* This session's own counts first, so that it sees its last call. */
	test_shm_mq_stats_flush();

	memset(nulls, 0, sizeof(nulls));
	for (i = 0; i < TEST_SHM_MQ_COUNTERS; i++)
	{
		values[col++] = Int64GetDatum((int64) pg_atomic_read_u64(&state->counters[i]));
		if (i == TEST_SHM_MQ_CALLS_FAILED)
			values[col++] = CStringGetTextDatum(failures_json(state));
	}
	values[col++] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&state->stats_reset));
	Assert(col == TEST_SHM_MQ_COUNTERS + 2);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/*
 * Failed calls by SQLSTATE class, as a JSON object: {"53": 1, "57": 3}.
 */
static char *
failures_json(test_shm_mq_cluster *state)
{
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	StringInfoData json;
	int			class;

	initStringInfo(&json);
	appendStringInfoChar(&json, '{');
	for (class = 0; class < TEST_SHM_MQ_SQLSTATE_CLASSES; class++)
	{
		uint64		failures = pg_atomic_read_u64(&state->failures[class]);

		if (failures == 0)
			continue;
		if (json.len > 1)
			appendStringInfoString(&json, ", ");
		appendStringInfo(&json, "\"%c%c\": " UINT64_FORMAT,
						 digits[class / 36], digits[class % 36], failures);
	}
	appendStringInfoChar(&json, '}');
	return json.data;
}

/*
 * test_shm_mq_stats_reset() returns void: every counter back to zero.
 */
Datum
test_shm_mq_stats_reset(PG_FUNCTION_ARGS)
{
	test_shm_mq_cluster *state = test_shm_mq_cluster_required();
	int			i;

	for (i = 0; i < TEST_SHM_MQ_COUNTERS; i++)
		pg_atomic_write_u64(&state->counters[i], 0);
	for (i = 0; i < TEST_SHM_MQ_SQLSTATE_CLASSES; i++)
		pg_atomic_write_u64(&state->failures[i], 0);
	pg_atomic_write_u64(&state->stats_reset, (uint64) GetCurrentTimestamp());
	PG_RETURN_VOID();
}
