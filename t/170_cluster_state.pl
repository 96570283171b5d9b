# 170_cluster_state.pl
#
# Proves what the cluster-wide state (version 1.4) promises: the views
# test_shm_mq_rings and test_shm_mq_stats tell the truth about every ring of
# the cluster, and the kept rings it bounds stay within their bounds.
#
#  - without the shared state (PostgreSQL 15 or 16 not preloaded), reading
#    either view and test_shm_mq_stats_reset() fail with 55000 and a hint
#    naming shared_preload_libraries; that is all there is to test there;
#  - visibility: two roles' long calls each show as one row, with its role,
#    database, workers and state 'running', and worker_pids the workers' real
#    PIDs in worker order (as the OS process list and pg_stat_activity name
#    them); a role sees only its own ring, a member of pg_read_all_stats and
#    a superuser see both; once the calls are cancelled, no row is left;
#  - exact counts: after test_shm_mq_stats_reset(), 10 calls of 100 trips
#    of 5 bytes through 3 workers count 10 cold calls, 30 workers, 1000
#    messages and 5000 bytes, as another session reads them;
#  - a kept ring's row: 'kept' with kept_until the keepalive ahead and one
#    call; 'running' on the same workers during the next call; two calls
#    after it; gone once the keepalive has passed, counted as expired, with
#    the calls, kept rings and claims counted as each call ended;
#  - a kept worker terminated while its ring idles: the row says 'lost',
#    rings_lost counts it, the next call says so and builds a new ring;
#  - 100 statement timeouts and 50 cancels at random moments leave no row
#    and no worker once each call has returned; each call that started its
#    ring counts one failure, and every failure is counted under class 57;
#  - test_shm_mq_ext.max_kept_workers holds across sessions, whatever a
#    session does to its advisory locks (DISCARD ALL,
#    pg_advisory_unlock_all()): a second role's ring over the cap is not
#    kept, and a third session still finds worker slots; a reload lowering
#    the cap ends just enough idle kept rings within a second, as does a
#    reload turning a postgresql.conf keepalive to 0;
#  - ends from another session: REVOKE EXECUTE and DROP OWNED end the kept
#    ring of the role that lost the privilege, and DROP EXTENSION every kept
#    ring of the database, as the command runs (the workers' exit allowed
#    within a second); DROP ROLE of a ring's role ends it within a second;
#    each counted in rings_ended;
#  - a crash and restart starts the state anew: every counter 0, no row,
#    and a new stats_reset.
#
# The three kept-ring defects of the advisory-lock design are the cap
# broken by DISCARD ALL, a lowered cap or keepalive that idle rings never
# saw, and rings that outlived DROP EXTENSION, REVOKE and DROP ROLE until
# their owner's next statement; the tests of them (7a to 7c) are built to
# fail on that code.  The blocks below are numbered as the issue "Cluster-
# wide state" lists what they prove; the crash (6) comes last, since it
# ends every session.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use JSON::PP ();
use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# A call that runs until something stops it.
my $long_call = "SELECT test_shm_mq(1024, 'x', 2000000000, 2)";

# 12 worker slots, one the logical replication launcher's: 11 for rings.  A
# kept ring of 4 leaves 7, enough for a call through 4 workers; two kept
# rings of 4, which a broken cap would allow, would leave 3.  The crash at
# the end must restart the server, which test clusters do not by default.
my $node = new_node(
	'cluster_state',
	max_worker_processes => 12,
	conf                 => [
		'test_shm_mq_ext.max_kept_workers = 4',
		'restart_after_crash = on' ]);

# Without the shared state, every way into it fails alike, with 55000.
if (!has_shared_state($node))
{
	my $session = TestShmMq::Session->new($node);

	foreach my $sql (
		'SELECT * FROM test_shm_mq_rings',
		'SELECT * FROM test_shm_mq_stats',
		'SELECT test_shm_mq_stats_reset()')
	{
		my $label = "no shared state: $sql";
		my $error = parse_error($session->query($sql)->{stderr}) // {};

		is($error->{sqlstate}, '55000', "$label fails with 55000");
		like(
			$error->{hint} // '',
			qr/"shared_preload_libraries"/,
			"$label: the hint names shared_preload_libraries");
	}
	$session->close;
	$node->stop;
	done_testing();
	exit;
}

my $control = TestShmMq::Session->new($node);

# From PostgreSQL 17 on, without preloading, the state is a segment of the
# dynamic shared memory registry, made as it is first needed, and kept as
# long as the server: look at the state before taking the snapshot.
$control->query('SELECT count(*) FROM test_shm_mq_stats');
my $segments_before = dsm_segments($node);

# Poll a condition every 10 ms until it holds or the seconds have passed;
# returns whether it held.
sub poll_until
{
	my ($seconds, $condition) = @_;
	my $deadline = now() + $seconds;

	while (1)
	{
		return 1 if $condition->();
		return 0 if now() > $deadline;
		pause(0.01);
	}
}

# Run a statement and assert it succeeded without a word.
sub quietly
{
	my ($session, $sql, $label) = @_;
	my $result = $session->query($sql);

	is($result->{stderr}, '', "$label: $sql succeeds without a word");
	return $result;
}

# Close a session and wait for its backend to have exited, so that nothing
# it still counts as it goes reaches the counters of what follows.
sub close_session
{
	my ($session) = @_;
	my $pid = $session->pid;

	$session->close;
	poll_until($TestShmMq::SETTLE_SECONDS, sub { process_gone($pid) })
	  or die "backend $pid did not exit";
	return;
}

# The rows of test_shm_mq_rings that a session sees now, by leader PID, and
# the query's stderr, empty unless it failed.  Each row is a hash reference
# of its columns, with worker_pids as the PIDs joined by spaces, kept_ahead
# and kept_after_call the milliseconds from now and from last_call to
# kept_until (empty unless kept), database empty where NULL.
sub rings_seen
{
	my ($session) = @_;
	my @columns = qw(leader_pid role database workers worker_pids queue_size
	  wait_strategy state calls messages bytes bytes_by_reference
	  kept_ahead kept_after_call);
	my $result = $session->query(
		q{SELECT leader_pid, role, coalesce(database, ''), workers,
			array_to_string(worker_pids, ' '), queue_size, wait_strategy,
			state, calls, messages, bytes, bytes_by_reference,
			coalesce(round(1000 * extract(epoch FROM kept_until - now()))::text, ''),
			coalesce(round(1000 * extract(epoch FROM kept_until - last_call))::text, '')
		FROM test_shm_mq_rings ORDER BY leader_pid});
	my %rows;

	foreach my $line (split /\n/, $result->{stdout})
	{
		my %row;

		@row{@columns} = split /\|/, $line, -1;
		$rows{ $row{leader_pid} } = \%row;
	}
	return (\%rows, $result->{stderr});
}

# The row of one leader's ring, as the control session sees it; undef if
# there is none.
sub ring_row
{
	my ($leader) = @_;
	my ($rows, $stderr) = rings_seen($control);

	die "could not read test_shm_mq_rings: $stderr" if $stderr ne '';
	return $rows->{$leader};
}

# The workers that idle kept rings hold now, cluster-wide, as the control
# session sees test_shm_mq_rings.
sub kept_workers
{
	my $result = $control->query(
		q{SELECT coalesce(sum(workers), 0) FROM test_shm_mq_rings
		WHERE state = 'kept'});

	die "could not read test_shm_mq_rings: $result->{stderr}"
	  if $result->{stderr} ne '';
	return $result->{stdout};
}

# test_shm_mq_stats, read through a session, as a hash reference; dies if it
# cannot be read.
sub stats_of
{
	my ($session) = @_;
	my $result =
	  $session->query('SELECT row_to_json(s) FROM test_shm_mq_stats s');

	die "could not read test_shm_mq_stats: $result->{stderr}"
	  if $result->{stderr} =~ /^(?:ERROR|FATAL):/m || $result->{stdout} eq '';
	return JSON::PP::decode_json($result->{stdout});
}

# Assert that counters went up from before to after by exactly the amounts
# given, counter => amount.
sub check_counted
{
	my ($label, $before, $after, %expected) = @_;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	foreach my $counter (sort keys %expected)
	{
		is( $after->{$counter} - $before->{$counter},
			$expected{$counter},
			"$label: $counter went up by $expected{$counter}");
	}
	return;
}

# A leader's workers in the OS process list, as their PIDs joined by spaces
# in worker order, from the titles that number them.
sub os_workers
{
	my ($leader) = @_;
	my %by_number;

	foreach my $line (worker_processes($node, $leader))
	{
		$by_number{$2} = $1
		  if $line =~ /^(\d+) .*test_shm_mq_ext worker (\d+) of \d+ for PID/;
	}
	return join(' ', map { $by_number{$_} } sort { $a <=> $b } keys %by_number);
}

# A leader's workers in pg_stat_activity, once it shows all that have
# joined, as their PIDs joined by spaces in worker order.
sub stat_activity_workers
{
	my ($leader) = @_;

	return join(' ',
		map { $_->{pid} }
		sort { ($a->{number} // 0) <=> ($b->{number} // 0) }
		  shown_ring_workers($control, $leader));
}

# Wait until a leader's ring has no row (unless view is false: the view may
# not exist) and none of its workers is in the OS process list, for at most
# the limit, from since; assert it happened within the limit, and return
# whether it happened at all.
sub check_ring_gone
{
	my ($label, $since, $limit, $leader, %opts) = @_;
	my $view = $opts{view} // 1;
	my $gone = poll_until(
		$limit + $TestShmMq::SETTLE_SECONDS,
		sub {
			return !worker_processes($node, $leader)
			  && (!$view || !defined ring_row($leader));
		});
	my $elapsed = now() - $since;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	ok($gone, "$label: the ring and its workers are gone");
	note sprintf('%s [%s]: the ring was gone %.0f ms after it',
		$label, dsm_choice(), 1000 * $elapsed);
	cmp_ok($elapsed, '<', $limit, "$label: within $limit s");
	return $gone;
}

# A session that keeps its rings for a while; superusers only.
sub keeping_session
{
	my ($keepalive) = @_;
	my $session = TestShmMq::Session->new($node);

	quietly($session,
		"SET test_shm_mq_ext.ring_keepalive = '$keepalive'",
		"keeping session");
	return $session;
}

# Make a ring of nworkers workers in a session that keeps it, and return its
# row once it shows kept.
sub kept_ring
{
	my ($session, $nworkers, $label) = @_;
	my $row;

	quietly($session, "SELECT test_shm_mq(1024, 'kept', 1, $nworkers)",
		$label);
	$row = ring_row($session->pid);
	is($row->{state} // '(no row)', 'kept', "$label: the ring is kept");
	is($row->{workers} // '', $nworkers, "$label: with $nworkers workers");
	return $row;
}

my $wait_strategy =
  $control->query('SHOW test_shm_mq_ext.wait_strategy')->{stdout};
my $superuser = $control->query('SELECT current_user')->{stdout};

$node->safe_psql(
	'postgres', q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE carol LOGIN;
	GRANT pg_read_all_stats TO carol});
grant_ring_functions($node, $_) foreach qw(alice bob);

# 1. Visibility: alice's and bob's long calls, seen by each role.
{
	my $label   = 'visibility';
	my %callers = map { $_ => TestShmMq::Session->new($node, user => $_) }
	  qw(alice bob);
	my %leaders  = map { $_ => $callers{$_}->pid } keys %callers;
	my %watchers = (
		(map { $_ => TestShmMq::Session->new($node, user => $_) }
			  qw(alice bob carol)),
		superuser => $control);

	$callers{$_}->send($long_call) foreach sort keys %callers;
	ok( poll_until(
			$TestShmMq::SETTLE_SECONDS,
			sub {
				my ($rows) = rings_seen($control);
				return !grep {
					my $row = $rows->{ $leaders{$_} };
					!defined $row
					  || $row->{state} ne 'running'
					  || $row->{worker_pids} !~ /^\d+ \d+$/
				} keys %leaders;
			}),
		"$label: both rings show running, with both workers joined");

	foreach my $role (sort keys %leaders)
	{
		my $leader = $leaders{$role};
		my $row    = ring_row($leader) // {};

		is($row->{role}     // '', $role,      "$label: $role\'s ring: role");
		is($row->{database} // '', 'postgres', "$label: $role\'s ring: database");
		is($row->{workers} // '', 2, "$label: $role\'s ring: workers");
		is($row->{state} // '', 'running', "$label: $role\'s ring: state");
		is($row->{queue_size} // '', 1024,
			"$label: $role\'s ring: queue_size");
		is($row->{wait_strategy} // '', $wait_strategy,
			"$label: $role\'s ring: wait_strategy");
		is($row->{worker_pids} // '', os_workers($leader),
			"$label: $role\'s ring: worker_pids are the workers in the OS process list, in order"
		);
		is($row->{worker_pids} // '', stat_activity_workers($leader),
			"$label: $role\'s ring: worker_pids are the workers in pg_stat_activity, in order"
		);
	}

	my %sees = (
		alice     => [ $leaders{alice} ],
		bob       => [ $leaders{bob} ],
		carol     => [ sort { $a <=> $b } values %leaders ],
		superuser => [ sort { $a <=> $b } values %leaders ],);
	my %why = (
		alice     => 'only her own ring',
		bob       => 'only his own ring',
		carol     => 'both rings, as a member of pg_read_all_stats',
		superuser => 'both rings',);
	foreach my $watcher (sort keys %sees)
	{
		my ($rows, $stderr) = rings_seen($watchers{$watcher});

		is($stderr, '', "$label: $watcher may read test_shm_mq_rings");
		is_deeply([ sort { $a <=> $b } keys %$rows ],
			$sees{$watcher}, "$label: $watcher sees $why{$watcher}");
	}

	$control->query("SELECT pg_cancel_backend($_)") foreach values %leaders;
	foreach my $role (sort keys %callers)
	{
		my $error = parse_error($callers{$role}->wait_result->{stderr}) // {};

		is($error->{sqlstate} // '', '57014', "$label: $role\'s call is cancelled");
	}
	my ($rows, $stderr) = rings_seen($control);
	is_deeply($rows, {}, "$label: no row is left once both calls returned");

	close_session($_) foreach values %callers;
	close_session($watchers{$_}) foreach qw(alice bob carol);
	check_no_leftovers($node, $segments_before, $label);
}

# 2. A known workload counted exactly.
{
	my $label   = 'exact counts';
	my $session = TestShmMq::Session->new($node);

	quietly($control, 'SELECT test_shm_mq_stats_reset()', $label);
	my $failed = 0;
	foreach (1 .. 10)
	{
		$failed++
		  if $session->query("SELECT test_shm_mq(1024, 'abcde', 100, 3)")
		  ->{stderr} ne '';
	}
	is($failed, 0, "$label: 10 calls of 100 trips through 3 workers succeed");
	my $stats = stats_of($control);
	note "$label [" . dsm_choice() . '], 10 calls of '
	  . "test_shm_mq(1024, 'abcde', 100, 3), as another session reads them: "
	  . join(', ',
		map { "$_ = " . (ref $stats->{$_} ? JSON::PP::encode_json($stats->{$_}) : $stats->{$_}) }
		  sort keys %$stats);
	my %expected = (
		calls_cold         => 10,
		calls_warm         => 0,
		calls_failed       => 0,
		workers_started    => 30,
		workers_failed     => 0,
		messages           => 1000,
		bytes              => 5000,
		bytes_by_reference => 0,
		rings_kept         => 0,
		rings_claimed      => 0,
		slot_waits         => 0,);
	is($stats->{$_}, $expected{$_}, "$label: $_ = $expected{$_}")
	  foreach sort keys %expected;
	is_deeply($stats->{calls_failed_by_class},
		{}, "$label: calls_failed_by_class is empty");
	cmp_ok($stats->{waits}, '>', 0, "$label: waits were counted");
	close_session($session);
}

# 3. A kept ring's row, from its first call to its expiry.
{
	my $label   = 'a kept ring\'s row';
	my $session = keeping_session('2s');
	my $leader  = $session->pid;
	my $before  = stats_of($control);

	quietly($session, "SELECT test_shm_mq(1024, 'x', 1, 2)",
		"$label, first call");
	my $row = ring_row($leader) // {};
	is($row->{state} // '', 'kept', "$label: after the first call, 'kept'");
	is($row->{calls} // '', 1, "$label: after the first call, calls 1");
	is($row->{messages} // '', 1, "$label: after the first call, messages 1");
	ok( ($row->{kept_after_call} // '') =~ /^\d+$/
		  && abs($row->{kept_after_call} - 2000) <= 50,
		"$label: kept_until is the keepalive after the call ("
		  . ($row->{kept_after_call} // 'none') . ' ms)');
	ok( ($row->{kept_ahead} // '') =~ /^\d+$/
		  && $row->{kept_ahead} > 1000
		  && $row->{kept_ahead} <= 2000,
		"$label: kept_until is about 2 s ahead ("
		  . ($row->{kept_ahead} // 'none') . ' ms)');
	my $pids = $row->{worker_pids} // '';
	is($pids, os_workers($leader),
		"$label: worker_pids are the kept workers");
	check_counted("$label, the first call as it ended",
		$before, stats_of($control),
		calls_cold => 1,
		rings_kept => 1,
		messages   => 1);

	# A second call of a few hundred milliseconds, watched as it runs.
	$session->send("SELECT test_shm_mq(1024, 'x', 20000, 2)");
	my @running;
	while ($session->running)
	{
		my $seen = ring_row($leader);
		push @running, $seen->{worker_pids}
		  if defined $seen && $seen->{state} eq 'running';
		pause(0.01);
	}
	is($session->wait_result->{stderr}, '', "$label: the second call succeeds");
	ok(scalar @running, "$label: during the second call, 'running'");
	is_deeply([ grep { $_ ne $pids } @running ],
		[], "$label: on the same workers");
	$row = ring_row($leader) // {};
	is($row->{state} // '', 'kept', "$label: after the second call, 'kept'");
	is($row->{calls} // '', 2, "$label: after the second call, calls 2");
	is($row->{messages} // '', 20001,
		"$label: after the second call, messages 20001");
	is($row->{bytes} // '', 20001, "$label: after the second call, bytes 20001");
	is($row->{worker_pids} // '', $pids, "$label: the same workers");
	check_counted("$label, the second call as it ended",
		$before, stats_of($control),
		calls_cold    => 1,
		calls_warm    => 1,
		rings_kept    => 2,
		rings_claimed => 1,
		messages      => 20001);

	# The keepalive passes: the row goes, and the workers with it.
	my $kept_at = now();
	ok( poll_until(2 + $TestShmMq::SETTLE_SECONDS,
			sub { !defined ring_row($leader) && os_workers($leader) eq '' }),
		"$label: once the keepalive has passed, the row and the workers go");
	note sprintf('%s [%s]: gone %.0f ms after the second call',
		$label, dsm_choice(), 1000 * (now() - $kept_at));
	check_counted("$label, expired", $before, stats_of($control),
		calls_cold    => 1,
		calls_warm    => 1,
		rings_kept    => 2,
		rings_claimed => 1,
		rings_expired => 1,
		rings_ended   => 0);

	# The leader's session adds what it has counted before it reads.
	check_counted("$label, expired, as the leader's session reads them",
		$before, stats_of($session),
		calls_cold    => 1,
		calls_warm    => 1,
		rings_kept    => 2,
		rings_claimed => 1,
		rings_expired => 1,
		messages      => 20001);
	close_session($session);
	check_no_leftovers($node, $segments_before, $label);
}

# 4. A kept worker terminated while its ring idles.
{
	my $label   = 'a kept worker terminated';
	my $session = keeping_session('1min');
	my $leader  = $session->pid;

	quietly($session, "SELECT test_shm_mq(1024, 'x', 1, 2)", $label);
	my $row = ring_row($leader) // {};
	my @pids = split / /, $row->{worker_pids} // '';
	is(scalar @pids, 2, "$label: the kept ring has 2 workers");
	my $before = stats_of($control);

	$control->query("SELECT pg_terminate_backend($pids[1])");
	ok( poll_until(
			$TestShmMq::SETTLE_SECONDS,
			sub { ((ring_row($leader) // {})->{state} // '') eq 'lost' }),
		"$label: the row says 'lost'");
	poll_until($TestShmMq::SETTLE_SECONDS, sub { process_gone($pids[1]) });
	check_counted($label, $before, stats_of($control), rings_lost => 1);

	my $result = $session->query("SELECT test_shm_mq(1024, 'y', 1, 2)");
	is(parse_error($result->{stderr}), undef, "$label: the next call works");
	like(
		$result->{stderr},
		qr/^NOTICE:  00000: kept ring of 2 workers was lost, starting a new one$/m,
		"$label: the next call says so");
	$row = ring_row($leader) // {};
	is($row->{state} // '', 'kept', "$label: the new ring is kept");
	is($row->{calls} // '', 1, "$label: the new ring has made one call");
	my @new = split / /, $row->{worker_pids} // '';
	ok(@new == 2 && !grep({ my $p = $_; grep { $_ == $p } @pids } @new),
		"$label: the new ring has new workers");
	ok(!grep({ !process_gone($_) } @pids),
		"$label: the lost ring's workers have exited");
	is($session->query('SELECT test_shm_mq_release_ring()')->{stdout},
		't', "$label: the new ring is released");
	is(ring_row($leader), undef, "$label: and has no row");
	close_session($session);
	check_no_leftovers($node, $segments_before, $label);
}

# 5. Statement timeouts and cancels: no row, no worker once a call returns,
# and each failed call that got as far as its ring counted, in class 57.
{
	my $label   = 'timeouts and cancels';
	my $timeout = TestShmMq::Session->new($node);
	my $cancel  = TestShmMq::Session->new($node);
	my (%errors, @rows_left, @workers_left, @miscounted);
	my %calls = (failed => 0, with_ring => 0, before_ring => 0);

	quietly($control, 'SELECT test_shm_mq_stats_reset()', $label);
	my $counted = stats_of($control);

	# Look once, at once, after a call has returned: for a row, for a
	# worker, and at what the call counted.  A cancel can come before the
	# call has asked for a ring, and count no call; one that came after the
	# call started its ring (calls_cold) must count the failure.
	my $look = sub {
		my ($what, $result) = @_;
		my $error = parse_error($result->{stderr}) // {};
		my ($rows, $stderr) = rings_seen($control);
		my @workers = worker_processes($node);
		my $stats = stats_of($control);
		my $failed = $stats->{calls_failed} - $counted->{calls_failed};
		my $cold   = $stats->{calls_cold} - $counted->{calls_cold};

		$errors{ $error->{sqlstate} // 'none' }++;
		push @rows_left, "$what: $stderr" if $stderr ne '';
		push @rows_left,
		  map { "$what: $_->{leader_pid} $_->{state} [$_->{worker_pids}]" }
		  values %$rows;
		push @workers_left, map { "$what: $_" } @workers;
		push @miscounted,
		  "$what: calls_failed +$failed, calls_cold +$cold, "
		  . ($error->{message} // 'no error')
		  if $failed > 1 || $cold > 1 || ($cold == 1 && $failed != 1);
		$calls{failed} += $failed;
		$calls{with_ring} += $cold;
		$calls{before_ring}++ if $cold == 0;
		$counted = $stats;
	};

	quietly($timeout, "SET statement_timeout = '5ms'", $label);
	$look->("timeout $_", $timeout->query($long_call)) foreach 1 .. 100;
	foreach my $i (1 .. 50)
	{
		my $result;

		$cancel->send($long_call);
		pause(0.002 + rand(0.05));

		# A cancel that came before the statement did is lost: cancel again.
		for (1 .. 10)
		{
			$control->query("SELECT pg_cancel_backend(" . $cancel->pid . ")");
			$result = $cancel->wait_result(timeout => 1);
			last if $result->{finished};
		}
		$look->("cancel $i", $result);
	}
	note "$label [" . dsm_choice() . ']: errors by SQLSTATE: '
	  . join(', ', map { "$_: $errors{$_}" } sort keys %errors)
	  . "; calls that started a ring: $calls{with_ring}, that failed before: "
	  . "$calls{before_ring}; calls_failed: $calls{failed}";
	is_deeply(\%errors, { '57014' => 150 },
		"$label: all 150 calls fail with 57014");
	is_deeply(\@rows_left, [],
		"$label: no row in test_shm_mq_rings once each call returned");
	is_deeply(\@workers_left, [],
		"$label: no worker in the OS process list once each call returned");
	is_deeply(\@miscounted, [],
		"$label: each call that started its ring counts one failure, and none counts more"
	);
	cmp_ok($calls{with_ring}, '>=', 100,
		"$label: most calls started their ring ($calls{with_ring} of 150)");
	my $stats = stats_of($control);
	is_deeply(
		$stats->{calls_failed_by_class},
		{ '57' => $stats->{calls_failed} },
		"$label: calls_failed_by_class counts every failed call in class 57 "
		  . "($stats->{calls_failed} of 150)");
	close_session($timeout);
	close_session($cancel);
	check_no_leftovers($node, $segments_before, $label);
}

# 7a. The cap holds across sessions and roles, whatever a session does to
# its advisory locks.
{
	my $label = 'max_kept_workers = 4';
	my @kept_seen;

	$node->safe_psql(
		'postgres', q{
		ALTER ROLE alice SET test_shm_mq_ext.ring_keepalive = '60s';
		ALTER ROLE bob SET test_shm_mq_ext.ring_keepalive = '60s'});
	my $alice = TestShmMq::Session->new($node, user => 'alice');
	my $bob   = TestShmMq::Session->new($node, user => 'bob');

	my $row = kept_ring($alice, 4, "$label, alice");
	push @kept_seen, kept_workers();
	quietly($alice, 'DISCARD ALL', "$label, alice");
	quietly($alice, 'SELECT pg_advisory_unlock_all()', "$label, alice");
	push @kept_seen, kept_workers();
	is((ring_row($alice->pid) // {})->{worker_pids} // '',
		$row->{worker_pids} // 'none',
		"$label: alice's ring stays kept after DISCARD ALL");

	quietly($bob, "SELECT test_shm_mq(1024, 'x', 1, 4)", "$label, bob");
	check_no_workers_of($node, $bob->pid,
		"$label: bob's ring, over the cap, is not kept");
	is(ring_row($bob->pid), undef, "$label: bob's ring has no row");
	push @kept_seen, kept_workers();

	quietly($control, "SELECT test_shm_mq(1024, 'x', 1, 4)",
		"$label, a third session");
	push @kept_seen, kept_workers();
	is($kept_seen[-1], 4, "$label: alice's 4 workers are all that is kept");
	is_deeply([ grep { $_ > 4 } @kept_seen ],
		[], "$label: kept rings never held more than 4 workers (@kept_seen)");

	close_session($alice);
	close_session($bob);
	$node->safe_psql(
		'postgres', q{
		ALTER ROLE alice RESET test_shm_mq_ext.ring_keepalive;
		ALTER ROLE bob RESET test_shm_mq_ext.ring_keepalive});
	check_no_leftovers($node, $segments_before, $label, settle => 1);
}

# Set a setting with ALTER SYSTEM (RESET where value is undef) and reload;
# returns the moment of the reload.
sub reload_with
{
	my ($setting, $value) = @_;
	my $sql =
	  defined $value
	  ? "ALTER SYSTEM SET test_shm_mq_ext.$setting = '$value'"
	  : "ALTER SYSTEM RESET test_shm_mq_ext.$setting";

	quietly($control, $sql, 'reload');
	my $reload_at = now();
	quietly($control, 'SELECT pg_reload_conf()', 'reload');
	return $reload_at;
}

# Wait until new sessions, and the control session, see a setting as shown.
# A new session loads the library first: until then, where it is not
# preloaded, the setting is a placeholder, shown as written ('60s', not
# '1min').
sub wait_for_setting
{
	my ($setting, $shown) = @_;

	poll_until(
		$TestShmMq::SETTLE_SECONDS,
		sub {
			$node->safe_psql('postgres',
				"LOAD 'test_shm_mq_ext'; SHOW test_shm_mq_ext.$setting") eq
			  $shown;
		}) or die "the reload of $setting did not take";
	poll_until(
		$TestShmMq::SETTLE_SECONDS,
		sub {
			$control->query("SHOW test_shm_mq_ext.$setting")->{stdout} eq
			  $shown;
		}) or die "the control session does not see $setting = $shown";
	return;
}

# 7b. A reload lowering the cap, or turning the keepalive in postgresql.conf
# to 0, ends idle kept rings within a second.
{
	my $label = 'a reload lowering max_kept_workers';
	my @sessions = map { keeping_session('1min') } 1 .. 2;
	my %leaders = map { $_->pid => $_ } @sessions;

	kept_ring($_, 2, "$label, session " . $_->pid) foreach @sessions;
	is(kept_workers(), 4, "$label: two rings hold 4 workers");
	my $before = stats_of($control);

	# To 2: one ring of the two ends, just enough.
	my $reload_at = reload_with('max_kept_workers', 2);
	my $ended;
	poll_until(
		1 + $TestShmMq::SETTLE_SECONDS,
		sub {
			($ended) = grep {
				!defined ring_row($_) && os_workers($_) eq ''
			} sort keys %leaders;
			return defined $ended;
		});
	my $elapsed = now() - $reload_at;
	ok(defined $ended, "$label to 2: a ring ends");
	note sprintf('%s [%s]: to 2, a ring gone %.0f ms after the reload',
		$label, dsm_choice(), 1000 * $elapsed);
	cmp_ok($elapsed, '<', 1, "$label to 2: within 1 s of the reload");
	wait_for_setting('max_kept_workers', 2);
	pause(0.5);
	my ($other) = grep { !defined $ended || $_ != $ended } sort keys %leaders;
	is((ring_row($other) // {})->{state} // '', 'kept',
		"$label to 2: the other ring stays kept");
	is(kept_workers(), 2, "$label to 2: idle rings hold 2 workers");

	# To 0: the other goes too.
	$reload_at = reload_with('max_kept_workers', 0);
	check_ring_gone("$label to 0", $reload_at, 1, $other);
	wait_for_setting('max_kept_workers', 0);
	check_counted($label, $before, stats_of($control), rings_ended => 2);

	reload_with('max_kept_workers', undef);
	wait_for_setting('max_kept_workers', 4);
	close_session($_) foreach @sessions;
	check_no_leftovers($node, $segments_before, $label);

	# The keepalive from postgresql.conf, for a session that sets none.
	$label = 'a reload turning ring_keepalive to 0';
	reload_with('ring_keepalive', '60s');
	wait_for_setting('ring_keepalive', '1min');
	my $session = TestShmMq::Session->new($node);
	quietly($session, "LOAD 'test_shm_mq_ext'", $label);
	is($session->query('SHOW test_shm_mq_ext.ring_keepalive')->{stdout},
		'1min', "$label: a new session has the keepalive of postgresql.conf");
	kept_ring($session, 2, $label);
	$before    = stats_of($control);
	$reload_at = reload_with('ring_keepalive', 0);
	check_ring_gone($label, $reload_at, 1, $session->pid);
	wait_for_setting('ring_keepalive', 0);
	check_counted($label, $before, stats_of($control), rings_ended => 1);
	reload_with('ring_keepalive', undef);
	wait_for_setting('ring_keepalive', 0);
	close_session($session);
	check_no_leftovers($node, $segments_before, $label);
}

# 7c. Ends from another session: REVOKE, DROP OWNED, DROP ROLE and DROP
# EXTENSION.
{
	$node->safe_psql(
		'postgres', q{
		CREATE ROLE keeper_revoked LOGIN;
		CREATE ROLE keeper_owned LOGIN;
		CREATE ROLE ring_users NOLOGIN;
		CREATE ROLE keeper_dropped LOGIN IN ROLE ring_users;
		ALTER ROLE keeper_revoked SET test_shm_mq_ext.ring_keepalive = '60s';
		ALTER ROLE keeper_owned SET test_shm_mq_ext.ring_keepalive = '60s';
		ALTER ROLE keeper_dropped SET test_shm_mq_ext.ring_keepalive = '60s'});
	grant_ring_functions($node, $_)
	  foreach qw(keeper_revoked keeper_owned ring_users);

	# Each: what ends the ring, the role whose session keeps it (superuser
	# when undef), how long after the command the ring may take to go.
	my @ends = (
		[   'REVOKE EXECUTE ON FUNCTION test_shm_mq(int8, text, int4, int4) FROM keeper_revoked',
			'keeper_revoked', 1 ],
		[ 'DROP OWNED BY keeper_owned', 'keeper_owned', 1 ],
		[ 'DROP ROLE keeper_dropped',   'keeper_dropped', 1 ],
		[ 'DROP EXTENSION test_shm_mq_ext', undef, 1 ],);

	foreach my $end (@ends)
	{
		my ($sql, $role, $limit) = @$end;
		my $label = "$sql in another session";
		my $session =
		  defined $role
		  ? TestShmMq::Session->new($node, user => $role)
		  : keeping_session('1min');
		my $leader = $session->pid;

		kept_ring($session, 2, $label);
		is((ring_row($leader) // {})->{role} // '',
			$role // $superuser, "$label: the ring is of that role");
		my $before = stats_of($control);
		my $drops_view = $sql =~ /^DROP EXTENSION/;
		my $result = $control->query($sql);
		is($result->{stderr}, '', "$label: succeeds without a word");
		check_ring_gone($label, $result->{done_at}, $limit, $leader,
			view => !$drops_view);
		if ($drops_view)
		{
			quietly($control, 'CREATE EXTENSION test_shm_mq_ext', $label);
			is(ring_row($leader), undef, "$label: no row after CREATE EXTENSION");
		}
		check_counted($label, $before, stats_of($control), rings_ended => 1);
		if ($drops_view)
		{
			quietly($session, "SELECT test_shm_mq(1024, 'again', 1, 2)",
				"$label, the owner's next call");
			my $row = ring_row($leader) // {};
			is($row->{calls} // '', 1,
				"$label: the owner's next call builds a new ring");
		}
		close_session($session);
		check_no_leftovers($node, $segments_before, $label);
	}
}

# 6. A crash and restart: the state starts anew.
{
	my $label = 'crash restart';
	my $victim = TestShmMq::Session->new($node);

	quietly($victim, "SELECT test_shm_mq(1024, 'abc', 10, 2)", $label);
	my $before = stats_of($control);
	cmp_ok($before->{calls_cold}, '>', 0, "$label: calls were counted before");
	check_no_leftovers($node, $segments_before, "$label, before");

	my $log_offset = -s $node->logfile;
	kill 'KILL', $victim->pid;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$log_offset);
	ok($node->poll_query_until('postgres', 'SELECT true'),
		"$label: the node accepts connections again");
	$victim->close;
	$control->close;

	$control = TestShmMq::Session->new($node);
	my $after = stats_of($control);
	my @counted = grep { $_ ne 'stats_reset' && $_ ne 'calls_failed_by_class'
		  && $after->{$_} != 0 } sort keys %$after;
	is_deeply(\@counted, [], "$label: every counter is 0");
	is_deeply($after->{calls_failed_by_class},
		{}, "$label: calls_failed_by_class is empty");
	is( $control->query(
			"SELECT '$after->{stats_reset}'::timestamptz > '$before->{stats_reset}'::timestamptz"
		)->{stdout},
		't',
		"$label: stats_reset is new");
	my ($rows, $stderr) = rings_seen($control);
	is($stderr, '', "$label: test_shm_mq_rings can be read");
	is_deeply($rows, {}, "$label: no row");

	# The restart made the dynamic shared memory control segment anew: a
	# new snapshot, and a call, for the last leak check.
	$segments_before = dsm_segments($node);
	quietly($control, "SELECT test_shm_mq(1024, 'abc', 10, 2)", $label);
	is(stats_of($control)->{calls_cold}, 1, "$label: counting starts at 1");
}

$control->close;
check_no_leftovers($node, $segments_before, 'the end');
$node->stop;
done_testing();
