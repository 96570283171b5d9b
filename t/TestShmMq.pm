
# TestShmMq.pm
#
# Shared pieces of test_shm_mq_ext's TAP tests:
#
#  - new_node(): a node whose dynamic_shared_memory_type comes from the
#    environment variable TEST_SHM_MQ_DSM (posix, sysv, mmap, or posix_min,
#    meaning posix with min_dynamic_shared_memory = 64MB; posix when unset),
#    with the extension created;
#  - TestShmMq::Session: PostgreSQL::Test::BackgroundPsql, running one
#    statement at a time in the background and noting the moment its error
#    arrives, so that a test can time how long a call takes to fail after a
#    fault;
#  - wait_for_ring(): the PIDs of a running call's workers, once it is running;
#  - dsm_segments() and check_no_leftovers(): the proof that a fault left no
#    worker (in pg_stat_activity or in the OS process list) and no dynamic
#    shared memory segment of ours behind.
#
# Every wait is a poll loop with a deadline; nothing here waits unbounded.

package TestShmMq;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();

our @EXPORT = qw(
  dsm_choice
  dsm_type
  preloaded
  has_shared_state
  check_no_keeping
  new_node
  wait_strategies
  wait_for_ring
  worker_processes
  ring_workers
  shown_ring_workers
  stat_workers
  process_gone
  dsm_segments
  check_no_leftovers
  check_leak_detection
  check_no_workers_of
  workers_seen
  check_time_to_error
  check_processes_exit
  grant_ring_functions
  long_calls
  parse_error
  now
  pause
);

# The settings behind each value of TEST_SHM_MQ_DSM.
my %DSM_CHOICES = (
	posix     => { type => 'posix', conf => [] },
	sysv      => { type => 'sysv',  conf => [] },
	mmap      => { type => 'mmap',  conf => [] },
	posix_min => {
		type => 'posix',
		conf => ['min_dynamic_shared_memory = 64MB'], },);

# How long to wait for things that normally take milliseconds: workers to
# start, processes to exit, segments to go.
our $SETTLE_SECONDS = 5;

# How long a background statement may run before the test gives up on it.
our $STATEMENT_SECONDS = 60;

# Longest a fault may take to reach the caller.
our $MAX_TIME_TO_ERROR = 1.0;

# Time as a floating-point number of seconds, and a sub-second sleep.
sub now   { return Time::HiRes::time(); }
sub pause { Time::HiRes::sleep($_[0]); return; }

=pod

=item dsm_choice()

The value of TEST_SHM_MQ_DSM, posix when unset; dies on any other value, so
that a typo in CI cannot silently test posix four times.

=cut

sub dsm_choice
{
	my $choice = $ENV{TEST_SHM_MQ_DSM};

	$choice = 'posix' if !defined($choice) || $choice eq '';
	die "TEST_SHM_MQ_DSM must be one of "
	  . join(', ', sort keys %DSM_CHOICES)
	  . ", not \"$choice\"\n"
	  unless exists $DSM_CHOICES{$choice};
	return $choice;
}

=pod

=item dsm_type()

The dynamic_shared_memory_type the nodes run with: posix, sysv or mmap.

=cut

sub dsm_type
{
	return $DSM_CHOICES{ dsm_choice() }{type};
}

=pod

=item preloaded()

Whether the nodes load the library at start (shared_preload_libraries),
as TEST_SHM_MQ_PRELOAD says: 1 for yes, 0 or unset for no; dies on any
other value.

=cut

sub preloaded
{
	my $preload = $ENV{TEST_SHM_MQ_PRELOAD} // '';

	die "TEST_SHM_MQ_PRELOAD must be 1, 0 or unset, not \"$preload\"\n"
	  unless $preload =~ /^[01]?$/;
	return $preload eq '1';
}

=pod

=item has_shared_state(node)

Whether the node gives the extension its shared state: from PostgreSQL 17
on, or with the library preloaded.  Where it does not, no ring is kept and
the cluster-wide views fail with 55000.

=cut

sub has_shared_state
{
	my ($node) = @_;

	return preloaded() || $node->safe_psql('postgres',
		'SHOW server_version_num') >= 170000;
}

=pod

=item check_no_keeping(node)

Where the node gives the extension no shared state, assert what a kept-ring
test then gets instead: a call with a keepalive keeps nothing, and says so
once per session, with a WARNING naming shared_preload_libraries.

=cut

sub check_no_keeping
{
	my ($node) = @_;
	my $session = TestShmMq::Session->new($node);

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	$session->query("SET test_shm_mq_ext.ring_keepalive = '1min'");
	my $first = $session->query("SELECT test_shm_mq(1024, 'a', 1, 2)");
	like(
		$first->{stderr},
		qr/^WARNING:  55000: no ring is kept: test_shm_mq_ext has no shared state in this server$/m,
		'no shared state: a call with a keepalive says no ring is kept');
	like($first->{stderr}, qr/^HINT:  .*"shared_preload_libraries"/m,
		'no shared state: the hint names shared_preload_libraries');
	is_deeply([ stat_workers($node, $session->pid) ],
		[], 'no shared state: no worker stays after the call');
	is($session->query("SELECT test_shm_mq(1024, 'b', 1, 2)")->{stderr},
		'', 'no shared state: the next call says nothing');
	$session->close;
	return;
}

=pod

=item new_node(name, max_worker_processes => N, conf => [lines])

Create, start and return a node with the DSM implementation chosen by
TEST_SHM_MQ_DSM, the library preloaded if TEST_SHM_MQ_PRELOAD says so,
max_worker_processes (16 unless given) and any further configuration
lines, with the extension created in database postgres and its shared state made
where the server gives it one.  Asserts that the server really uses the
chosen implementation and preloading.

=cut

sub new_node
{
	my ($name, %opts) = @_;
	my $choice = dsm_choice();
	my $type   = $DSM_CHOICES{$choice}{type};
	my $node   = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf(
		'postgresql.conf',
		join("\n",
			"dynamic_shared_memory_type = $type",
			@{ $DSM_CHOICES{$choice}{conf} },
			'max_worker_processes = ' . ($opts{max_worker_processes} // 16),
			(preloaded() ? "shared_preload_libraries = 'test_shm_mq_ext'" : ()),
			@{ $opts{conf} // [] })
		  . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION test_shm_mq_ext');

	# Not preloaded, from PostgreSQL 17 on, the extension's shared state
	# lives in the dynamic shared memory registry, whose segments are made at
	# its first use and kept until the server stops: make them now, so that
	# no leak check takes them for a ring's.
	$node->safe_psql('postgres', 'SELECT count(*) FROM test_shm_mq_stats')
	  if has_shared_state($node);

	is($node->safe_psql('postgres', 'SHOW dynamic_shared_memory_type'),
		$type, "node $name runs with dynamic_shared_memory_type = $type");
	is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
		preloaded() ? 'test_shm_mq_ext' : '',
		"node $name " . (preloaded() ? 'preloads' : 'does not preload')
		  . ' the library');
	note "TEST_SHM_MQ_DSM = $choice, TEST_SHM_MQ_PRELOAD = "
	  . (preloaded() ? 1 : 0);

	return $node;
}

=pod

=item grant_ring_functions(node, role)

Grant a role EXECUTE on every function that creates a segment or starts
workers; since version 1.2 PUBLIC may not run them.

=cut

sub grant_ring_functions
{
	my ($node, $role) = @_;

	$node->safe_psql(
		'postgres', qq{
		GRANT EXECUTE ON FUNCTION
			test_shm_mq(int8, text, int4, int4),
			test_shm_mq_pipelined(int8, text, int4, int4, bool),
			test_shm_mq_layout(int8, int4),
			test_shm_mq_bench(int8, int4, int4, int4, text, text)
		TO $role});
	return;
}

=pod

=item wait_strategies(node)

The values test_shm_mq_ext.wait_strategy accepts, so that fault tests can
run under each.  Run a call under one with TestShmMq::Session's
set_wait_strategy().

=cut

sub wait_strategies
{
	my ($node) = @_;
	my $values = $node->safe_psql(
		'postgres', q{
		LOAD 'test_shm_mq_ext';
		SELECT array_to_string(enumvals, ' ')
		FROM pg_settings
		WHERE name = 'test_shm_mq_ext.wait_strategy'});

	die "test_shm_mq_ext.wait_strategy is not defined" if $values eq '';
	return split(/ /, $values);
}

=pod

=item postmaster_pid(node)

The node's postmaster PID, from postmaster.pid.

=cut

sub postmaster_pid
{
	my ($node) = @_;
	my $pidfile = $node->data_dir . '/postmaster.pid';

	open my $fh, '<', $pidfile or die "could not open $pidfile: $!";
	my $pid = <$fh>;
	close $fh;
	chomp $pid;
	return $pid;
}

=pod

=item worker_processes(node, leader_pid)

The node's test_shm_mq_ext workers in the OS process list, as "PID ARGS"
lines, as ps shows them: children of the node's postmaster whose title names
a worker (of the given leader only, if one is given).  Other clusters on the
machine may run the extension too, hence the parent check.

=cut

sub worker_processes
{
	my ($node, $leader_pid) = @_;
	my $title =
	  defined $leader_pid
	  ? qr/test_shm_mq_ext worker \d+ of \d+ for PID $leader_pid\b/
	  : qr/test_shm_mq_ext worker/;
	my $postmaster = postmaster_pid($node);
	my @workers;

	# What ps would show, read from /proc without starting a process: the
	# fault tests look after every call.
	opendir my $dh, '/proc' or die "could not open /proc: $!";
	foreach my $pid (sort { $a <=> $b } grep { /^\d+$/ } readdir $dh)
	{
		my ($stat, $args);

		open my $sfh, '<', "/proc/$pid/stat" or next;
		$stat = <$sfh>;
		close $sfh;
		next unless defined $stat;
		my ($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/;
		next unless defined $ppid && $ppid == $postmaster;

		open my $cfh, '<', "/proc/$pid/cmdline" or next;
		$args = do { local $/; <$cfh> } // '';
		close $cfh;
		$args =~ s/\0+$//;
		$args =~ tr/\0/ /;
		push @workers, "$pid $args" if $args =~ $title;
	}
	closedir $dh;
	return @workers;
}

=pod

=item ring_workers(via, leader_pid, columns...)

The node's test_shm_mq_ext workers that pg_stat_activity shows now (of the
given leader only; of every leader when leader_pid is undef), in PID order,
asked through via: an open TestShmMq::Session (quicker than a new
connection) or a node.  Each is a hash reference with pid, name (its
application_name), and, parsed from a name "test_shm_mq_ext worker K of N for
PID L", number (K), nworkers (N) and leader (L), undef where the name is not
of that form; and, under its own name, each further pg_stat_activity column
asked for, such as state, usename or wait_event, undef where NULL.  Dies if
the query fails.

=cut

sub ring_workers
{
	my ($via, $leader_pid, @columns) = @_;
	my $leader_filter = '';
	my ($rows, @workers);

	if (defined $leader_pid)
	{
		die "not a PID: $leader_pid" unless $leader_pid =~ /^\d+$/;
		$leader_filter = "AND application_name LIKE '% for PID $leader_pid'";
	}
	foreach my $column (@columns)
	{
		die "not a pg_stat_activity column: $column"
		  unless $column =~ /^[a-z_]+$/;
	}

	# Every value but the PID comes hex-encoded after an 'x', so that a NULL
	# (an empty field), a '|' or a newline in a value comes back as it is.
	my $values = join(', ',
		map { "'x' || encode(convert_to(${_}::text, 'UTF8'), 'hex')" }
		  ('application_name', @columns));
	my $sql = qq{
		SELECT pid, $values
		FROM pg_stat_activity
		WHERE backend_type = 'test_shm_mq_ext' $leader_filter
		ORDER BY pid};

	if ($via->isa('TestShmMq::Session'))
	{
		my $result = $via->query($sql);

		die "could not list the workers in pg_stat_activity: $result->{stderr}"
		  if !$result->{finished}
		  || $result->{connection_lost}
		  || $result->{stderr} =~ /^(?:ERROR|FATAL):/m;
		$rows = $result->{stdout};
	}
	else
	{
		$rows = $via->safe_psql('postgres', $sql);
	}

	foreach my $row (split /\n/, $rows)
	{
		my ($pid, @values) = split /\|/, $row, -1;
		my %worker = (pid => $pid);

		@worker{ 'name', @columns } =
		  map { length $_ ? pack('H*', substr($_, 1)) : undef } @values;
		@worker{qw(number nworkers leader)} =
		  $worker{name} =~
		  /^test_shm_mq_ext worker (\d+) of (\d+) for PID (\d+)$/
		  if defined $worker{name};
		push @workers, \%worker;
	}
	return @workers;
}

=pod

=item shown_ring_workers(via, leader_pid, columns)

ring_workers() for one leader, once pg_stat_activity shows every worker that
test_shm_mq_rings says has joined the leader's ring: a worker connects, and
so shows there, only after it has run for test_shm_mq_ext.worker_connect_delay
or as its ring goes idle between calls.  Needs the shared state; waits at
most $SETTLE_SECONDS, then returns what it sees.  Where the extension is not
installed (a test dropped it), returns what pg_stat_activity shows at once.

=cut

sub shown_ring_workers
{
	my ($via, $leader_pid, @columns) = @_;
	my $deadline = now() + $SETTLE_SECONDS;
	my $sql = qq{SELECT coalesce(string_agg(pid::text, ' '), '')
		FROM test_shm_mq_rings, unnest(worker_pids) pid
		WHERE leader_pid = $leader_pid};
	my @workers;

	die "not a PID: $leader_pid" unless $leader_pid =~ /^\d+$/;
	while (1)
	{
		my ($joined, $failed);

		if ($via->isa('TestShmMq::Session'))
		{
			my $result = $via->query($sql);

			($joined, $failed) = ($result->{stdout}, $result->{stderr} ne '');
		}
		else
		{
			$failed = $via->psql('postgres', $sql, stdout => \$joined) != 0;
		}
		return ring_workers($via, $leader_pid, @columns) if $failed;
		my %joined = map { $_ => 1 } split / /, $joined;

		@workers = ring_workers($via, $leader_pid, @columns);
		delete $joined{ $_->{pid} } foreach @workers;
		last if !%joined || now() > $deadline;
		pause(0.01);
	}
	return @workers;
}

=pod

=item stat_workers(node, leader_pid)

The node's test_shm_mq_ext workers in pg_stat_activity (of the given leader
only, if one is given), as "PID APPLICATION_NAME" lines.

=cut

sub stat_workers
{
	my ($node, $leader_pid) = @_;

	return map { "$_->{pid} $_->{name}" }
	  grep { defined $_->{name} } ring_workers($node, $leader_pid);
}

=pod

=item process_gone(pid)

True once a process has exited: its /proc entry is gone, or shows it a
zombie (Z) or being reaped (X, x), the state a zombie passes through as
its parent collects it.

=cut

sub process_gone
{
	my ($pid) = @_;
	my $stat;

	open my $fh, '<', "/proc/$pid/stat" or return 1;
	$stat = <$fh>;
	close $fh;
	return 1 unless defined $stat;
	return $stat =~ /\)\s+[ZXx]\s/ ? 1 : 0;
}

=pod

=item wait_for_ring(node, leader_pid, nworkers)

Wait until all nworkers workers of the call running in backend leader_pid are
relaying messages, and return a hash reference from worker number to PID.
Asserts nothing; dies if the ring does not come up in time, since every
later step depends on it.

=cut

sub wait_for_ring
{
	my ($node, $leader_pid, $nworkers) = @_;
	my $deadline = now() + $SETTLE_SECONDS;
	my %workers;

	while (1)
	{
		%workers = map { $_->{number} => $_->{pid} }
		  grep {
			     defined $_->{number}
			  && $_->{nworkers} == $nworkers
			  && ($_->{state} // '') eq 'active'
		  } ring_workers($node, $leader_pid, 'state');
		last if keys %workers == $nworkers;
		die "the ring of backend $leader_pid did not start: "
		  . scalar(keys %workers)
		  . " of $nworkers workers running"
		  if now() > $deadline;
		pause(0.02);
	}

	# A worker reports itself active just after telling the leader it is
	# ready; give the leader a moment to leave its start-up wait, so that a
	# fault injected now hits a running ring rather than one starting up.
	pause(0.25);

	return \%workers;
}

=pod

=item dsm_segments(node)

The dynamic shared memory segments that exist now, as a hash reference from a
printable identifier to the key by which processes map it: for posix (and
posix_min) the PostgreSQL.* entries under /dev/shm, for sysv the segments in
"ipcs -m", for mmap the files in the node's pg_dynshmem.  Take one snapshot
before a test, compare with check_no_leftovers() after it.

=cut

sub dsm_segments
{
	my ($node) = @_;
	my $type = dsm_type();
	my %segments;

	if ($type eq 'posix')
	{
		opendir my $dh, '/dev/shm' or die "could not open /dev/shm: $!";
		foreach my $name (readdir $dh)
		{
			$segments{"/dev/shm/$name"} = "/dev/shm/$name"
			  if $name =~ /^PostgreSQL\.\d+$/;
		}
		closedir $dh;
	}
	elsif ($type eq 'sysv')
	{
		my ($stdout, $stderr);

		IPC::Run::run([ 'ipcs', '-m' ], '>', \$stdout, '2>', \$stderr)
		  or die "ipcs failed: $stderr";
		foreach my $line (split /\n/, $stdout)
		{
			# key, shmid, owner, perms, bytes
			my ($key, $shmid, $bytes) =
			  $line =~ /^0x([0-9a-f]+)\s+(\d+)\s+\S+\s+\d+\s+(\d+)/
			  or next;
			$segments{"shmid $shmid (key 0x$key, $bytes bytes)"} =
			  sprintf('/SYSV%08s', $key);
		}
	}
	else
	{
		my $dir = $node->data_dir . '/pg_dynshmem';

		opendir my $dh, $dir or die "could not open $dir: $!";
		foreach my $name (readdir $dh)
		{
			$segments{"$dir/$name"} = "$dir/$name" if $name =~ /^mmap\./;
		}
		closedir $dh;
	}

	return \%segments;
}

=pod

=item foreign_mappings(node)

The mapping keys (see dsm_segments) mapped by processes that are not the
node's postmaster or its children: segments of other clusters on this
machine, which may come and go while a test runs.

=cut

sub foreign_mappings
{
	my ($node) = @_;
	my $postmaster = postmaster_pid($node);
	my %foreign;

	opendir my $dh, '/proc' or die "could not open /proc: $!";
	foreach my $pid (grep { /^\d+$/ } readdir $dh)
	{
		my ($stat, $ppid);

		next if $pid == $postmaster;
		open my $sfh, '<', "/proc/$pid/stat" or next;
		$stat = <$sfh>;
		close $sfh;
		next unless defined $stat;
		($ppid) = $stat =~ /\)\s+\S+\s+(\d+)/;
		next if defined $ppid && $ppid == $postmaster;

		open my $mfh, '<', "/proc/$pid/maps" or next;
		while (my $line = <$mfh>)
		{
			$foreign{$1} = 1
			  if $line =~ m{(/dev/shm/PostgreSQL\.\d+|/SYSV[0-9a-f]{8})};
		}
		close $mfh;
	}
	closedir $dh;

	return \%foreign;
}

=pod

=item leftover_segments(node, before)

Segments that exist now but not in the snapshot before, less those another
cluster's processes have mapped.

=cut

sub leftover_segments
{
	my ($node, $before) = @_;
	my $now = dsm_segments($node);
	my @new = grep { !exists $before->{$_} } sort keys %$now;
	my $foreign;

	return () unless @new;
	$foreign = foreign_mappings($node);
	return grep { !$foreign->{ $now->{$_} } } @new;
}

=pod

=item workers_seen(node, session, leader_pid)

The workers of a leader that can be seen now, as lines to report: in
pg_stat_activity, asked through session (an open TestShmMq::Session, which
is quicker than a new connection), and in the OS process list.  Empty when
none is.

=cut

sub workers_seen
{
	my ($node, $session, $leader_pid) = @_;
	my $stat = join(', ',
		map { "$_->{pid} $_->{name}" }
		  grep { defined $_->{name} } ring_workers($session, $leader_pid));

	return ((length $stat ? ("pg_stat_activity: $stat") : ()),
		map { "ps: $_" } worker_processes($node, $leader_pid));
}

=pod

=item check_no_leftovers(node, before, label, settle => 1)

Assert that no test_shm_mq_ext worker is left in pg_stat_activity or in the
OS process list, and that no segment exists that was not in the snapshot
before (from dsm_segments).

A call, failed or not, returns only once its workers have exited and its
segment is gone, so the workers are looked for once, at once.  Only where a
test knowingly left a worker behind, or a leader was terminated and must
still finish exiting, may it pass settle => 1 to allow a few seconds for
that.  Segments are always allowed those seconds: other clusters on this
machine share /dev/shm, and one of their segments is unmapped, and so looks
like ours, for a moment as it is created and again as it is destroyed.  A
segment of ours that leaked stays, and is still caught.

Returns what it found, for a test that reports its leak counts: a hash
reference with stat, processes and segments, each a reference to the list
asserted empty.

=cut

sub check_no_leftovers
{
	my ($node, $before, $label, %opts) = @_;
	my $deadline = now() + $SETTLE_SECONDS;
	my (@stat, @processes, @segments);

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	while (1)
	{
		@stat      = stat_workers($node);
		@processes = worker_processes($node);
		last if (!@stat && !@processes) || !$opts{settle} || now() > $deadline;
		pause(0.05);
	}
	while (1)
	{
		@segments = leftover_segments($node, $before);
		last if !@segments || now() > $deadline;
		pause(0.05);
	}

	is_deeply(\@stat, [], "$label: no worker left in pg_stat_activity");
	is_deeply(\@processes, [],
		"$label: no worker left in the OS process list");
	is_deeply(\@segments, [], "$label: no " . dsm_type() . " segment left");
	return {
		stat      => \@stat,
		processes => \@processes,
		segments  => \@segments,
	};
}

=pod

=item check_leak_detection(node, before)

Prove that check_no_leftovers() can fail: while a call runs, its workers are
seen in pg_stat_activity and in the OS process list, and its segment is seen
as one that was not there before.  With posix_min, a small ring's segment is
carved from main shared memory, out of sight, so the visible segment is a
ring too large for min_dynamic_shared_memory; and the small ring must indeed
not show up in /dev/shm.

=cut

sub check_leak_detection
{
	my ($node, $before) = @_;
	my $choice = dsm_choice();
	my $small  = "SELECT test_shm_mq(1024, 'x', 2000000000, 1)";

	# Queues of 48MB: a segment of about 96MB, more than the 64MB of
	# min_dynamic_shared_memory.
	my $large = "SELECT test_shm_mq(50331648, 'x', 2000000000, 1)";

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	foreach my $sql ($choice eq 'posix_min' ? ($small, $large) : ($small))
	{
		my $session = TestShmMq::Session->new($node);
		my $label   = "leak detection, $sql";

		$session->send($sql);
		wait_for_ring($node, $session->pid, 1);
		ok( scalar(stat_workers($node, $session->pid)) == 1,
			"$label: the worker is seen in pg_stat_activity");
		ok( scalar(worker_processes($node, $session->pid)) == 1,
			"$label: the worker is seen in the OS process list");
		my @segments = leftover_segments($node, $before);
		if ($sql eq $small && $choice eq 'posix_min')
		{
			is_deeply(\@segments, [],
				"$label: with min_dynamic_shared_memory, the segment is carved from main shared memory"
			);
		}
		else
		{
			is(scalar @segments, 1, "$label: its segment is seen");
		}
		kill 'INT', $session->pid;
		$session->wait_result;
		$session->close;
		check_no_leftovers($node, $before, $label);
	}
	return;
}

=pod

=item check_no_workers_of(node, leader_pid, label)

Assert that no worker of one leader is left, in pg_stat_activity or in the
OS process list; for when other calls' workers are meant to be running.  Like
check_no_leftovers(), it looks once, at once.

=cut

sub check_no_workers_of
{
	my ($node, $leader_pid, $label) = @_;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	is_deeply([ stat_workers($node, $leader_pid) ],
		[], "$label: no worker of backend $leader_pid left in pg_stat_activity");
	is_deeply([ worker_processes($node, $leader_pid) ],
		[],
		"$label: no worker of backend $leader_pid left in the OS process list"
	);
	return;
}

=pod

=item check_time_to_error(label, fault_at, arrived_at)

Print the time from a fault (fault_at) to its outcome (arrived_at: the error
reaching the caller, or the processes being gone; undef if it never came),
in the form the reports grep for ("time to error: LABEL [DSM]: N ms"), and
assert that it is below a second.

=cut

sub check_time_to_error
{
	my ($label, $fault_at, $arrived_at) = @_;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	if (!defined $arrived_at)
	{
		fail("$label: ended after the fault");
		return;
	}
	my $seconds = $arrived_at - $fault_at;
	note sprintf('time to error: %s [%s]: %.1f ms',
		$label, dsm_choice(), $seconds * 1000);
	cmp_ok($seconds, '<', $MAX_TIME_TO_ERROR,
		"$label: ended within $MAX_TIME_TO_ERROR s of the fault");
	return;
}

=pod

=item parse_error(stderr)

Split psql's verbose report of the first error or fatal error in stderr into
a hash reference with severity, sqlstate, message, detail, hint and context
(undef where absent).

=cut

sub parse_error
{
	my ($stderr) = @_;
	my %error;

	return undef
	  unless $stderr =~
	  /^(?:psql:[^\n]*?: )?(ERROR|FATAL):  ([0-9A-Z]{5}): ([^\n]*)$/m;
	@error{qw(severity sqlstate message)} = ($1, $2, $3);

	# Only look at the lines that follow this error.
	my $rest = substr($stderr, $+[0]);
	$rest =~ s/^\n//;
	foreach my $line (split /\n/, $rest)
	{
		last unless $line =~ /^(DETAIL|HINT|CONTEXT|LOCATION):  (.*)$/;
		$error{ lc $1 } = $2;
	}
	return \%error;
}



=pod

=item long_calls(nworkers)

One call of each round-trip function, through nworkers workers, that would
run for hours if nothing stopped it: function name => SQL.

=cut

sub long_calls
{
	my ($nworkers) = @_;

	return (
		'test_shm_mq' =>
		  "SELECT test_shm_mq(1024, 'x', 2000000000, $nworkers)",
		'test_shm_mq_pipelined' =>
		  "SELECT test_shm_mq_pipelined(16384, repeat('x', 100), 2000000000, $nworkers)",
	);
}

=pod

=item check_processes_exit(label, fault_at, pids)

Assert that every process in pids exits, and soon enough after the fault at
fault_at; polls with a deadline.

=cut

sub check_processes_exit
{
	my ($label, $fault_at, @pids) = @_;
	my $deadline = now() + $SETTLE_SECONDS;

	local $Test::Builder::Level = $Test::Builder::Level + 1;

	pause(0.005)
	  while (grep { !process_gone($_) } @pids) && now() < $deadline;
	my $gone_at = now();
	my @alive   = grep { !process_gone($_) } @pids;

	is_deeply(\@alive, [], "$label: the leader and its workers exited");
	check_time_to_error("$label, until the leader and its workers exited",
		$fault_at, @alive ? undef : $gone_at);
	return;
}


package TestShmMq::Session;

# A PostgreSQL::Test::BackgroundPsql session, with what it lacks for fault
# tests: a statement sent without waiting for it, and the moment its error
# reached the caller.  BackgroundPsql's own query() waits for the statement to
# end; send(), running() and wait_result() below use the same psql, its
# IPC::Run harness and its output buffers, one statement at a time.

use strict;
use warnings FATAL => 'all';

use parent -norequire, 'PostgreSQL::Test::BackgroundPsql';
use PostgreSQL::Test::BackgroundPsql;
use Test::More;

# How long a session may live: BackgroundPsql's harness timer would otherwise
# end psql after the default test timeout, whatever it is doing.
my $SESSION_SECONDS = 3600;

=pod

=item TestShmMq::Session->new(node, user => name, dbname => name)

Start psql on the node, with verbose error reports (SQLSTATE included),
going on after errors, and learn its backend's PID.

=cut

sub new
{
	my ($class, $node, %opts) = @_;
	my @params = ('-v', 'VERBOSITY=verbose');

	push @params, '-U', $opts{user} if defined $opts{user};
	my $self = $node->background_psql(
		$opts{dbname} // 'postgres',
		on_error_stop => 0,
		timeout       => $SESSION_SECONDS,
		extra_params  => \@params);
	bless $self, $class;
	$self->{statement} = 0;
	$self->{pending}   = 0;

	my $result = $self->query('SELECT pg_backend_pid()');
	die "could not start psql: $result->{stderr}"
	  unless $result->{stdout} =~ /^(\d+)$/;
	$self->{pid} = $1;

	return $self;
}

=pod

=item $session->pid()

The PID of the session's backend.

=cut

sub pid
{
	my ($self) = @_;
	return $self->{pid};
}

=pod

=item $session->set_wait_strategy(strategy)

Make the session's calls use a wait strategy from
TestShmMq::wait_strategies.

=cut

sub set_wait_strategy
{
	my ($self, $strategy) = @_;

	my $result =
	  $self->query("SET test_shm_mq_ext.wait_strategy = '$strategy'");
	die "could not set the wait strategy: $result->{stderr}"
	  if $result->{stderr} ne '';
	return;
}

=pod

=item $session->send(sql)

Send one statement (no trailing semicolon needed) and return at once, with the
time it was sent.  Collect its outcome with wait_result().

=cut

sub send
{
	my ($self, $sql) = @_;

	die "a statement is already running in this session" if $self->{pending};
	$self->{statement}++;
	$self->{marker}   = "test_shm_mq_ext statement $self->{statement} done";
	$self->{stdout}   = '';
	$self->{stderr}   = '';
	$self->{error_at} = undef;
	$self->{pending}  = 1;
	$self->{sent_at}  = TestShmMq::now();
	$self->{stdin} .=
	  "$sql\n;\n\\echo '$self->{marker}'\n\\warn '$self->{marker}'\n";
	$self->{run}->pump_nb;
	return $self->{sent_at};
}

=pod

=item $session->running()

Pump what psql has written so far and tell whether the statement is still
running.  When it has ended with an error, notes that moment as the time the
error reached the caller.

psql prints an error as soon as the server sends it, but the call has not
returned until the server has also finished aborting it, which is when a
client library such as libpq hands the error over.  The marker that follows
the statement shows that moment, so that is the one taken.

=cut

sub running
{
	my ($self) = @_;
	my $marker = $self->{marker};

	return 0 unless $self->{pending};
	$self->{run}->pump_nb if $self->{run}->pumpable;
	if ((      $self->{stdout} =~ /\Q$marker\E\n/
			&& $self->{stderr} =~ /\Q$marker\E\n/)
		|| !$self->{run}->pumpable)
	{
		$self->{pending} = 0;
		$self->{done_at} = TestShmMq::now();
		$self->{error_at} = $self->{done_at}
		  if $self->{stderr} =~ /^(?:psql:[^\n]*?: )?(?:ERROR|FATAL):/m;
		return 0;
	}
	return 1;
}

=pod

=item $session->wait_result(timeout => seconds)

Wait, for at most the timeout, for the statement sent last to end, and return
a hash reference: stdout and stderr (psql's output for that statement, without
the "psql:<stdin>:N: " that psql puts before a message read from a script),
finished (true if it ended; false on timeout), connection_lost (psql exited),
sent_at, error_at (when it ended with an ERROR or FATAL, or undef) and
done_at.

=cut

sub wait_result
{
	my ($self, %opts) = @_;
	my $deadline =
	  TestShmMq::now() + ($opts{timeout} // $TestShmMq::STATEMENT_SECONDS);
	my $marker = $self->{marker};

	while ($self->running)
	{
		last if TestShmMq::now() > $deadline;
		TestShmMq::pause(0.001);
	}

	my %result = (
		finished        => !$self->{pending},
		connection_lost => !$self->{run}->pumpable,
		sent_at         => $self->{sent_at},
		error_at        => $self->{error_at},
		done_at         => $self->{pending} ? undef : $self->{done_at},
		stdout          => $self->{stdout},
		stderr          => $self->{stderr},);
	$result{stdout} =~ s/\Q$marker\E\n//;
	$result{stderr} =~ s/\Q$marker\E\n//;
	$result{stderr} =~ s/^psql:<stdin>:\d+: //mg;
	chomp $result{stdout};

	note "statement $self->{statement} of backend "
	  . ($self->{pid} // '(starting)') . ': '
	  . ($result{finished} ? 'ended' : 'still running')
	  . "\nstdout: $result{stdout}\nstderr: $result{stderr}";
	return \%result;
}

=pod

=item $session->query(sql, timeout => seconds)

send() and wait_result() in one.  Unlike BackgroundPsql's query(), it
returns stderr and the times too, and never dies on an error.

=cut

sub query
{
	my ($self, $sql, %opts) = @_;

	$self->send($sql);
	return $self->wait_result(%opts);
}

=pod

=item $session->kill_client(signal)

Send a signal to psql itself, as a client that vanishes would.

=cut

sub kill_client
{
	my ($self, $signal) = @_;

	$self->{run}->signal($signal);
	return;
}

=pod

=item $session->close()

Quit psql, killing it if a statement is still running or it does not quit
within a few seconds.

=cut

sub close
{
	my ($self) = @_;
	my $deadline = TestShmMq::now() + $TestShmMq::SETTLE_SECONDS;

	if (!$self->{pending} && $self->{run}->pumpable)
	{
		$self->{stdin} .= "\\q\n";
		while ($self->{run}->pumpable && TestShmMq::now() < $deadline)
		{
			$self->{run}->pump_nb;
			TestShmMq::pause(0.005);
		}
	}
	eval { $self->{run}->kill_kill(grace => 1) }
	  if $self->{run}->pumpable;
	eval { $self->{run}->finish };
	return;
}

1;
