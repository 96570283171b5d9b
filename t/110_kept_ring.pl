
# 110_kept_ring.pl
#
# Proves what test_shm_mq_ext.ring_keepalive promises:
#
#  - a successful call keeps its ring, whose workers sit idle in
#    pg_stat_activity using well under a millisecond of CPU a second (worker
#    1 wakes twice a second to look for its role); the next call of the same shape from
#    test_shm_mq, test_shm_mq_pipelined or test_shm_mq_bench uses the same
#    workers; a call of another shape (queue size, workers, wait strategy)
#    takes the kept ring down first, and a call with a bad queue size leaves
#    it alone;
#  - once the keepalive has passed, the workers leave by themselves, and
#    nothing is left: no worker, no segment, no slot taken, even though the
#    session still idles; the next call builds a new ring without a word;
#  - a call that starts while the workers expire, a window held open here by
#    stopping one worker as the others expire, builds a new ring without an
#    error;
#  - the leader's session ending, or being terminated, while the ring idles
#    takes its workers with it;
#  - a worker terminated while the ring idles is not lost silently: the next
#    call builds a new ring, with a NOTICE carrying the worker's error;
#  - a cancel, a statement timeout, a worker's error or a lock timeout during
#    a call on a kept ring, and a rollback of the transaction or savepoint
#    that used it, take it down before the error or rollback returns; a
#    released savepoint and a committed transaction keep it;
#  - test_shm_mq_release_ring() takes it down at once;
#  - 10 000 warm calls, in one transaction and one per statement, do not grow
#    the leader's memory.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $keepalive_ms = 60000;

my $node            = new_node('kept_ring');
my $segments_before = dsm_segments($node);

# Keeping needs the extension's shared state; without it, what is tested is
# that nothing is kept, and the session is told so.
if (!has_shared_state($node))
{
	check_no_keeping($node);
	check_no_leftovers($node, $segments_before, 'no shared state');
	$node->stop;
	done_testing();
	exit;
}
my $control         = TestShmMq::Session->new($node);

$node->safe_psql('postgres', 'CREATE TABLE locked (id int)');

# A session that keeps its rings for $ms milliseconds.
sub keeping_session
{
	my ($ms) = @_;
	my $session = TestShmMq::Session->new($node);

	$session->query("SET test_shm_mq_ext.ring_keepalive = $ms");
	return $session;
}

# The workers of a leader, as "number => 'pid state'" in pg_stat_activity,
# through the control session, once it shows every worker of the ring.
sub ring_of
{
	my ($leader) = @_;

	return {
		map { ($_->{number} // '') => "$_->{pid} " . ($_->{state} // '') }
		  shown_ring_workers($control, $leader, 'state') };
}

# The PIDs of a ring from ring_of(), by worker number.
sub pids_of
{
	my ($ring) = @_;
	return { map { $_ => (split / /, $ring->{$_})[0] } keys %$ring };
}

# Run a statement in a session and assert it succeeded without a word.
sub quietly
{
	my ($session, $sql, $label) = @_;
	my $result = $session->query($sql);

	is($result->{stderr}, '', "$label: succeeds without a word");
	return $result;
}

# Assert that no worker of a leader is left, looking once, at once.
sub ring_gone
{
	my ($leader, $label) = @_;

	is_deeply(ring_of($leader), {}, "$label: no worker in pg_stat_activity");
	is_deeply([ worker_processes($node, $leader) ],
		[], "$label: no worker in the OS process list");
	return;
}

# CPU time a process has used, in nanoseconds.
sub cpu_ns
{
	my ($pid) = @_;

	open my $fh, '<', "/proc/$pid/schedstat" or return undef;
	my ($ns) = split / /, <$fh>;
	close $fh;
	return $ns;
}

# Reuse, shape changes, idle workers.
{
	my $label   = 'kept ring';
	my $session = keeping_session($keepalive_ms);
	my $leader  = $session->pid;

	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
		"$label: the first call");
	my $ring = ring_of($leader);
	is_deeply([ sort keys %$ring ], [ 1, 2 ],
		"$label: both workers stay after the call");
	like($ring->{$_}, qr/ idle$/, "$label: worker $_ is idle")
	  foreach sort keys %$ring;
	my $pids = pids_of($ring);

	my %before = map { $_ => cpu_ns($pids->{$_}) } keys %$pids;
	pause(1);
	my %after = map { $_ => cpu_ns($pids->{$_}) } keys %$pids;
	foreach my $worker (sort keys %$pids)
	{
		my $used = $after{$worker} - $before{$worker};

		note "$label: idle worker $worker used $used ns of CPU in a second";
		cmp_ok($used, '<', 1_000_000,
			"$label: idle worker $worker uses under 1 ms of CPU in a second");
	}

	foreach my $call (
		"SELECT test_shm_mq(1024, 'another message', 100, 2)",
		"SELECT test_shm_mq_pipelined(1024, 'pipelined', 1000, 2)",
		'SELECT * FROM test_shm_mq_bench(1024, 100, 100, 2)',
		"SELECT test_shm_mq(1024, repeat('w', 5000), 3, 2)")
	{
		quietly($session, $call, "$label: $call");
		is_deeply(pids_of(ring_of($leader)),
			$pids, "$label: $call uses the same workers");
	}

	my $result =
	  $session->query("SELECT test_shm_mq(10, 'too small', 1, 2)");
	like($result->{stderr}, qr/queue size must be at least/,
		"$label: a call with a bad queue size fails");
	is_deeply(pids_of(ring_of($leader)),
		$pids, "$label: and leaves the kept ring alone");

	# Each shape change takes the kept ring down before the call returns.
	foreach my $change (
		[ 'another queue size', "SELECT test_shm_mq(2048, 'a', 1, 2)" ],
		[ 'another worker count', "SELECT test_shm_mq(2048, 'a', 1, 3)" ],
		[   'another wait strategy',
			"SELECT * FROM test_shm_mq_bench(2048, 10, 1, 3, 'pingpong', 'block')"
		])
	{
		my ($what, $sql) = @$change;
		my $old = pids_of(ring_of($leader));

		quietly($session, $sql, "$label, $what");
		ok(!(grep { !process_gone($_) } values %$old),
			"$label, $what: the old workers have exited");
		my $new = pids_of(ring_of($leader));
		ok(keys %$new && !(grep { $new->{$_} == ($old->{$_} // 0) } keys %$new),
			"$label, $what: new workers are kept");
	}

	is($session->query('SELECT test_shm_mq_release_ring()')->{stdout},
		't', "$label: test_shm_mq_release_ring() finds a ring");
	ring_gone($leader, "$label, released");
	is($session->query('SELECT test_shm_mq_release_ring()')->{stdout},
		'f', "$label: and then none");

	# With the keepalive back at 0, a kept ring does not outlive the next
	# call, and that call keeps nothing.
	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
		"$label: keeping again");
	$pids = pids_of(ring_of($leader));
	$session->query('SET test_shm_mq_ext.ring_keepalive = 0');
	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
		"$label: a call with the keepalive at 0");
	ok(!(grep { !process_gone($_) } values %$pids),
		"$label, keepalive 0: the kept workers have exited");
	ring_gone($leader, "$label, keepalive 0");

	$session->close;
	check_no_leftovers($node, $segments_before, $label, settle => 1);
}

# Expiry: the workers leave by themselves, and nothing is left, though the
# session still idles.
{
	my $label   = 'keepalive of 500 ms';
	my $session = keeping_session(500);
	my $leader  = $session->pid;

	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 3)",
		"$label: the call");
	my $kept_at = now();
	my $pids    = pids_of(ring_of($leader));
	is(scalar keys %$pids, 3, "$label: the workers are kept");

	pause(0.25);
	ok(!(grep { process_gone($_) } values %$pids),
		"$label: the workers are still there half way");

	my $deadline = $kept_at + 5;
	pause(0.005)
	  while (grep { !process_gone($_) } values %$pids) && now() < $deadline;
	my $gone_after = now() - $kept_at;
	note sprintf('%s [%s]: workers gone %.0f ms after the call',
		$label, dsm_choice(), 1000 * $gone_after);
	ok(!(grep { !process_gone($_) } values %$pids),
		"$label: the workers have left");
	cmp_ok($gone_after, '<', 1.0,
		"$label: within 500 ms of the keepalive passing");
	check_no_leftovers($node, $segments_before,
		"$label, the session still idle");

	# All 15 free slots are free again.
	is($control->query("SELECT test_shm_mq(1024, 'a', 1, 15)")->{stderr},
		'', "$label: every slot is free again");

	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 3)",
		"$label: the next call builds a new ring");
	my $new = pids_of(ring_of($leader));
	is(scalar keys %$new, 3, "$label: and keeps it");
	$session->close;
	check_no_leftovers($node, $segments_before, "$label, session closed",
		settle => 1);
}

# A call that comes while its ring expires.  Worker 2 is stopped before the
# keepalive passes, so that worker 1 closes the ring and leaves while worker
# 2 still holds the segment; the call finds the ring closed, and must wait
# for worker 2, which is let go 50 ms later, before it builds a new ring.
{
	my $label   = 'a call while the ring expires';
	my $session = keeping_session(300);
	my $leader  = $session->pid;

	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
		"$label: the first call");
	my $kept_at = now();
	my $pids    = pids_of(ring_of($leader));
	kill 'STOP', $pids->{2};
	my $deadline = $kept_at + 5;
	pause(0.005) while !process_gone($pids->{1}) && now() < $deadline;
	ok(process_gone($pids->{1}), "$label: worker 1 expired and left");
	ok(!process_gone($pids->{2}), "$label: worker 2 is held");

	$session->send("SELECT test_shm_mq(1024, 'b', 10, 2)");
	pause(0.05);
	kill 'CONT', $pids->{2};
	my $result = $session->wait_result;
	is($result->{stderr}, '', "$label: the call succeeds without a word");
	ok(process_gone($pids->{2}), "$label: worker 2 left before it returned");
	my $new = pids_of(ring_of($leader));
	is(scalar keys %$new, 2, "$label: a new ring is kept");
	ok(!(grep { $new->{$_} == $pids->{$_} } keys %$new),
		"$label: with new workers");

	# And calls made around the moment of expiry, many times over: each
	# either claims the ring or builds a new one, never fails.
	my %outcomes;
	$session->query('SET test_shm_mq_ext.ring_keepalive = 50');
	foreach (1 .. 100)
	{
		$session->query("SELECT test_shm_mq(1024, 'x', 1, 2)");
		my $before = pids_of(ring_of($leader));
		pause(0.03 + rand(0.04));
		my $r = $session->query("SELECT test_shm_mq(1024, 'y', 1, 2)");
		my $after = pids_of(ring_of($leader));
		my $outcome =
		    $r->{stderr} ne '' ? "error: $r->{stderr}"
		  : ($before->{1} // -1) == ($after->{1} // 0) ? 'claimed'
		  :                                              'rebuilt';
		$outcomes{$outcome}++;
	}
	note "$label, 100 calls at the keepalive's end ["
	  . dsm_choice() . ']: '
	  . join(', ', map { "$_: $outcomes{$_}" } sort keys %outcomes);
	is(scalar(grep { /^error/ } keys %outcomes),
		0, "$label: calls at the keepalive's end never fail");

	$session->close;
	check_no_leftovers($node, $segments_before, $label, settle => 1);
}

# The leader's session ends, or is terminated, while its ring idles.
foreach my $end ('ends', 'is terminated')
{
	my $label   = "the leader's session $end while its ring idles";
	my $session = keeping_session($keepalive_ms);
	my $leader  = $session->pid;

	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 3)",
		"$label: the call");
	my $pids = pids_of(ring_of($leader));
	is(scalar keys %$pids, 3, "$label: the workers are kept");

	my $fault_at = now();
	if ($end eq 'ends')
	{
		$session->close;
	}
	else
	{
		$control->query("SELECT pg_terminate_backend($leader)");
	}
	check_processes_exit($label, $fault_at, $leader, values %$pids);
	$session->close;
	check_no_leftovers($node, $segments_before, $label);
}

# A worker terminated while the ring idles.
{
	my $label   = 'a kept worker terminated while idle';
	my $session = keeping_session($keepalive_ms);
	my $leader  = $session->pid;

	quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
		"$label: the call");
	my $pids = pids_of(ring_of($leader));
	$control->query("SELECT pg_terminate_backend($pids->{2})");
	my $deadline = now() + $TestShmMq::SETTLE_SECONDS;
	pause(0.005) while !process_gone($pids->{2}) && now() < $deadline;

	my $result = $session->query("SELECT test_shm_mq(1024, 'b', 10, 2)");
	is(parse_error($result->{stderr}), undef, "$label: the next call works");
	like(
		$result->{stderr},
		qr/^NOTICE:  00000: kept ring of 2 workers was lost, starting a new one\nDETAIL:  Worker 2 of 2 reported: terminating background worker "test_shm_mq_ext" due to administrator command\.$/m,
		"$label: a NOTICE says why, in the worker's words");
	ok(process_gone($pids->{1}), "$label: the other worker was taken down");
	my $new = pids_of(ring_of($leader));
	is(scalar keys %$new, 2, "$label: a new ring is kept");
	$session->close;
	check_no_leftovers($node, $segments_before, $label, settle => 1);
}

# Faults during a call on a kept ring: the ring is gone when the error
# returns.
{
	my @faults = (
		[   'pg_cancel_backend',
			"SELECT test_shm_mq(1024, 'x', 2000000000, 2)",
			'canceling statement due to user request',
			sub { $control->query("SELECT pg_cancel_backend($_[0])") } ],
		[   'statement_timeout',
			"SET statement_timeout = 300; SELECT test_shm_mq_pipelined(1024, 'x', 2000000000, 2)",
			'canceling statement due to statement timeout',
			undef ],
		[   'SIGTERM to worker 1',
			"SELECT test_shm_mq(1024, 'x', 2000000000, 2)",
			'terminating background worker "test_shm_mq_ext" due to administrator command',
			sub { kill 'TERM', $_[1] } ],);

	foreach my $fault (@faults)
	{
		my ($name, $sql, $message, $inject) = @$fault;
		my $label   = "$name during a call on a kept ring";
		my $session = keeping_session($keepalive_ms);
		my $leader  = $session->pid;

		quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
			"$label: the first call");
		my $pids = pids_of(ring_of($leader));
		$session->send($sql);
		if (defined $inject)
		{
			my $running = wait_for_ring($node, $leader, 2);
			is_deeply($running, $pids, "$label: the call uses the kept ring");
			$inject->($leader, $pids->{1});
		}
		my $result = $session->wait_result;
		is((parse_error($result->{stderr}) // {})->{message},
			$message, "$label: the call fails");
		ok(!(grep { !process_gone($_) } values %$pids),
			"$label: the kept workers have exited");
		ring_gone($leader, $label);
		$session->query('RESET statement_timeout');
		quietly($session, "SELECT test_shm_mq(1024, 'a', 1, 2)",
			"$label: the next call");
		$session->close;
		check_no_leftovers($node, $segments_before, $label, settle => 1);
	}
}

# Transactions: a rollback of what used the ring takes it down; a commit, or
# a released savepoint, keeps it; an unrelated rollback leaves it alone.
{
	my $label   = 'transactions';
	my $session = keeping_session($keepalive_ms);
	my $leader  = $session->pid;
	my $call    = "SELECT test_shm_mq(1024, 'a', 1, 2)";
	my $locker  = TestShmMq::Session->new($node);

	# Each case: statements, then whether a ring is kept at the end.
	my @cases = (
		[ 'ROLLBACK', [ 'BEGIN', $call, 'ROLLBACK' ], 0 ],
		[ 'COMMIT', [ 'BEGIN', $call, 'COMMIT' ], 1 ],
		[   'an unrelated ROLLBACK',
			[ $call, 'BEGIN', 'SELECT 1', 'ROLLBACK' ], 1 ],
		[   'ROLLBACK TO a savepoint set before the call',
			[ 'BEGIN', 'SAVEPOINT s', $call, 'ROLLBACK TO s', 'COMMIT' ], 0 ],
		[   'ROLLBACK TO a savepoint set after the call',
			[ 'BEGIN', $call, 'SAVEPOINT s', 'SELECT 1', 'ROLLBACK TO s', 'COMMIT' ],
			1 ],
		[   'RELEASE of a savepoint set before the call',
			[ 'BEGIN', 'SAVEPOINT s', $call, 'RELEASE s', 'COMMIT' ], 1 ],
		[   'RELEASE, then ROLLBACK of the transaction',
			[ 'BEGIN', 'SAVEPOINT s', $call, 'RELEASE s', 'ROLLBACK' ], 0 ],
		[   'a cursor, rolled back',
			[   'BEGIN',
				"DECLARE c CURSOR FOR SELECT test_shm_mq(1024, 'a', 1, 2) FROM generate_series(1, 3)",
				'FETCH 2 FROM c',
				'ROLLBACK' ],
			0 ],
		[   'an error later in the same statement',
			[   q{DO $$ BEGIN PERFORM test_shm_mq(1024, 'a', 1, 2);
				RAISE 'after the call'; END $$} ],
			0 ],
		[   'a lock timeout later in the transaction',
			[   'BEGIN',         $call,
				"SET LOCAL lock_timeout = '100ms'", 'LOCK TABLE locked' ],
			0 ],);

	$locker->query('BEGIN');
	$locker->query('LOCK TABLE locked');
	foreach my $case (@cases)
	{
		my ($name, $statements, $kept) = @$case;

		$session->query($_) foreach @$statements;
		if ($kept)
		{
			is(scalar keys %{ ring_of($leader) },
				2, "$label, $name: the ring is kept");
		}
		else
		{
			ring_gone($leader, "$label, $name");
		}

		# Out of any transaction the last case left open, then start over.
		$session->query('ROLLBACK');
		$session->query('SELECT test_shm_mq_release_ring()');
	}
	$locker->query('ROLLBACK');
	$locker->close;
	$session->close;
	check_no_leftovers($node, $segments_before, $label, settle => 1);
}

# Memory: warm calls, in one transaction and one statement each.
{
	my $label   = 'warm calls';
	my $session = keeping_session($keepalive_ms);
	my $leader  = $session->pid;

	sub rss_kib
	{
		my ($pid) = @_;
		open my $fh, '<', "/proc/$pid/status" or die "no /proc/$pid: $!";
		while (my $line = <$fh>)
		{
			return $1 if $line =~ /^VmRSS:\s+(\d+) kB/;
		}
		return undef;
	}

	my $loop = q{DO $$ BEGIN FOR i IN 1..%d LOOP
		PERFORM test_shm_mq(1024, 'a', 1, 1); END LOOP; END $$};
	quietly($session, sprintf($loop, 1000), "$label: 1000 to warm up");
	my $pids = pids_of(ring_of($leader));

	my $before = rss_kib($leader);
	my $result = quietly($session, sprintf($loop, 10000),
		"$label: 10000 in one transaction");
	my $after = rss_kib($leader);
	note sprintf(
		'%s [%s]: 10000 calls in one transaction in %.2f s; VmRSS %d -> %d kB',
		$label, dsm_choice(), $result->{done_at} - $result->{sent_at},
		$before, $after);
	cmp_ok($after - $before, '<', 1024,
		"$label: 10000 in one transaction grow VmRSS by less than 1 MiB");
	is_deeply(pids_of(ring_of($leader)),
		$pids, "$label: all in one transaction used the same ring");

	$before = rss_kib($leader);
	$result = quietly($session,
		join(";\n", ("SELECT test_shm_mq(1024, 'a', 1, 1)") x 10000),
		"$label: 10000 statements");
	$after = rss_kib($leader);
	note sprintf('%s [%s]: 10000 statements in %.2f s; VmRSS %d -> %d kB',
		$label, dsm_choice(), $result->{done_at} - $result->{sent_at},
		$before, $after);
	cmp_ok($after - $before, '<', 1024,
		"$label: 10000 statements grow VmRSS by less than 1 MiB");
	is_deeply(pids_of(ring_of($leader)),
		$pids, "$label: all statements used the same ring");
	$session->close;
	check_no_leftovers($node, $segments_before, $label, settle => 1);
}

$control->close;
check_no_leftovers($node, $segments_before, 'end');
$node->stop;
done_testing();
