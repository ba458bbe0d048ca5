package orchestratordata.esnode;

import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.Logger;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.ConsoleAppender;
import org.apache.logging.log4j.core.config.Configurator;
import org.apache.logging.log4j.core.config.builder.api.AppenderComponentBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilder;
import org.apache.logging.log4j.core.config.builder.api.ConfigurationBuilderFactory;
import org.apache.logging.log4j.core.config.builder.impl.BuiltConfiguration;
import org.elasticsearch.Build;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.transport.TransportAddress;
import org.elasticsearch.env.Environment;
import org.elasticsearch.http.BindHttpException;
import org.elasticsearch.http.HttpServerTransport;
import org.elasticsearch.node.ClasspathPluginsNode;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.BindTransportException;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts one real Elasticsearch 8.x node inside this JVM, from jars on the class path (no distribution, no
 * modules directory). Prints {@code READY http://HOST:PORT} on stdout once the HTTP layer is bound and the node has
 * formed its single-node cluster; all logging goes to stderr and to {@code <logs>/<cluster-name>.log}.
 * SIGTERM/SIGINT close the node cleanly (data is kept; a restart on the same data dir resumes it).
 *
 * <pre>
 * java -Xms512m -Xmx512m -cp 'target/classes:target/lib/*' orchestratordata.esnode.LocalNode \
 *      --home DIR --data DIR --repo DIR --logs DIR --http-port 9200 --host 127.0.0.1 --cluster-name NAME
 * </pre>
 * Exit codes: 0 clean stop, 2 bad arguments, 3 port already in use, 1 any other start failure.
 */
public final class LocalNode {
    static final int EXIT_USAGE = 2;
    static final int EXIT_PORT_IN_USE = 3;
    static final int EXIT_START_FAILED = 1;

    /** Plugins/modules compiled into this node; each must be on the class path (see pom.xml). */
    static final List<Class<? extends Plugin>> PLUGINS = List.of(
        Netty4Plugin.class,         // HTTP (and transport) layer: org.elasticsearch.plugin:transport-netty4
        LocalCompatPlugin.class     // GET / (rest-root module) and _reindex/_update_by_query/_delete_by_query (reindex module)
    );

    private LocalNode() {}

    public static void main(String[] args) {
        // Must run before log4j, netty or the JDK locale machinery initialise; the same values as ES's own
        // config/jvm.options. A -D on the command line wins.
        defaultProperty("log4j.shutdownHookEnabled", "false");   // we stop log4j ourselves, after the node
        defaultProperty("log4j2.disable.jmx", "true");
        defaultProperty("log4j2.formatMsgNoLookups", "true");
        defaultProperty("java.locale.providers", "SPI,CLDR");
        defaultProperty("io.netty.noUnsafe", "true");
        defaultProperty("io.netty.noKeySetOptimization", "true");
        defaultProperty("io.netty.recycler.maxCapacityPerThread", "0");
        defaultProperty("io.netty.allocator.numDirectArenas", "0");
        defaultProperty("es.networkaddress.cache.ttl", "60");

        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("ERROR: " + e.getMessage());
            System.err.println(Options.USAGE);
            System.exit(EXIT_USAGE);
            return;
        }
        if (options.help) {
            System.out.println(Options.USAGE);
            return;
        }
        System.exit(run(options));
    }

    static int run(Options options) {
        PrintStream stdout = System.out;
        try {
            for (Path p : List.of(options.home, options.data, options.repo, options.logs, options.home.resolve("config"))) {
                Files.createDirectories(p);
            }
        } catch (IOException e) {
            System.err.println("ERROR: cannot create directory: " + e);
            return EXIT_START_FAILED;
        }
        configureLogging(options);
        Logger logger = LogManager.getLogger(LocalNode.class);

        // Fail fast, before the (slow) node construction, when the HTTP port is taken.
        if (options.httpPort != null && !options.httpPort.contains("-") && !isPortFree(options.host, Integer.parseInt(options.httpPort))) {
            System.err.println("ERROR: port " + options.httpPort + " on " + options.host + " is already in use");
            stopLogging();
            return EXIT_PORT_IN_USE;
        }

        Settings settings = options.settings();
        long started = System.nanoTime();
        final Node node;
        try {
            node = new ClasspathPluginsNode(new Environment(settings, options.home.resolve("config")), PLUGINS);
        } catch (Exception e) {
            logger.error("failed to create the Elasticsearch node", e);
            System.err.println("ERROR: failed to create the Elasticsearch node: " + rootMessage(e));
            stopLogging();
            return EXIT_START_FAILED;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            try {
                logger.info("shutdown requested: closing the node");
                closeNode(node, logger);
            } finally {
                stopped.countDown();
                stopLogging();
            }
        }, "esnode-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        try {
            node.start();
        } catch (Exception e) {
            boolean portInUse = causedBy(e, BindHttpException.class) || causedBy(e, BindTransportException.class);
            logger.error("failed to start the Elasticsearch node", e);
            System.err.println((portInUse ? "ERROR: port already in use: " : "ERROR: failed to start the Elasticsearch node: ") + rootMessage(e));
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException ignored) {
                // already shutting down
            }
            closeNode(node, logger);
            stopLogging();
            return portInUse ? EXIT_PORT_IN_USE : EXIT_START_FAILED;
        }

        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        String url = "http://" + http.getAddress() + ":" + http.getPort();
        logger.info("Elasticsearch {} ready at {} in {} ms (home={}, data={}, repo={})", Build.current().version(), url,
            TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started), options.home, options.data, options.repo);
        stdout.println("READY " + url);
        stdout.flush();

        if (options.exitOnStdinEof) {
            Thread watcher = new Thread(() -> {
                try {
                    InputStream in = System.in;
                    while (in.read() >= 0) {
                        // discard
                    }
                } catch (IOException ignored) {
                    // treat as EOF
                }
                logger.info("stdin closed: stopping");
                System.exit(0);
            }, "esnode-stdin-watch");
            watcher.setDaemon(true);
            watcher.start();
        }

        try {
            stopped.await();   // released by the shutdown hook (SIGTERM, SIGINT, System.exit)
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }

    private static void closeNode(Node node, Logger logger) {
        try {
            node.prepareForClose();
            node.close();
            if (node.awaitClose(30, TimeUnit.SECONDS) == false) {
                logger.warn("node did not close within 30s");
            } else {
                logger.info("node closed");
            }
        } catch (Exception e) {
            logger.warn("error while closing the node", e);
        }
    }

    private static void configureLogging(Options options) {
        ConfigurationBuilder<BuiltConfiguration> b = ConfigurationBuilderFactory.newConfigurationBuilder();
        b.setStatusLevel(Level.ERROR);
        b.setConfigurationName("esnode");
        String pattern = "[%d{ISO8601}][%-5p][%-25c{1.}] %m%n";
        AppenderComponentBuilder console = b.newAppender("stderr", "Console")
            .addAttribute("target", ConsoleAppender.Target.SYSTEM_ERR)
            .add(b.newLayout("PatternLayout").addAttribute("pattern", pattern));
        b.add(console);
        String file = options.logs.resolve(options.clusterName + ".log").toString();
        AppenderComponentBuilder rolling = b.newAppender("file", "RollingFile")
            .addAttribute("fileName", file)
            .addAttribute("filePattern", file + ".%i")
            .add(b.newLayout("PatternLayout").addAttribute("pattern", pattern))
            .addComponent(b.newComponent("Policies")
                .addComponent(b.newComponent("SizeBasedTriggeringPolicy").addAttribute("size", "64MB")))
            .addComponent(b.newComponent("DefaultRolloverStrategy").addAttribute("max", "3"));
        b.add(rolling);
        b.add(b.newRootLogger(Level.toLevel(options.logLevel, Level.INFO))
            .add(b.newAppenderRef("stderr"))
            .add(b.newAppenderRef("file")));
        // chatty at INFO and of no use here
        b.add(b.newLogger("org.elasticsearch.deprecation", Level.ERROR));
        b.add(b.newLogger("org.elasticsearch.nativeaccess", Level.ERROR));
        Configurator.initialize(b.build());
        LogConfigurator.configureESLogging();     // ES's own logging facade (org.elasticsearch.logging) -> log4j
        LogConfigurator.setNodeName(options.nodeName);
        LogConfigurator.setClusterName(options.clusterName);
    }

    private static void stopLogging() {
        if (LogManager.getContext(false) instanceof LoggerContext ctx) {
            Configurator.shutdown(ctx);
        }
    }

    static boolean isPortFree(String host, int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);   // as netty binds (network.tcp.reuse_address defaults to true on Linux)
            s.bind(new InetSocketAddress(InetAddress.getByName(host), port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    private static boolean causedBy(Throwable t, Class<? extends Throwable> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) return true;
        }
        return false;
    }

    private static String rootMessage(Throwable t) {
        StringBuilder sb = new StringBuilder(String.valueOf(t.getMessage()));
        Throwable c = t.getCause();
        while (c != null && c != c.getCause()) {
            sb.append(" <- ").append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
            c = c.getCause();
        }
        return sb.toString();
    }

    private static void defaultProperty(String key, String value) {
        if (System.getProperty(key) == null) System.setProperty(key, value);
    }

    /** Command line options. */
    static final class Options {
        static final String USAGE = """
            usage: LocalNode [--home DIR] [--data DIR] [--repo DIR] [--logs DIR] [--http-port N] [--transport-port N|RANGE]
                             [--host ADDR] [--cluster-name NAME] [--node-name NAME] [--log-level LEVEL]
                             [--exit-on-stdin-eof] [-E setting=value ...]
              --home DIR          path.home (default ./es-home); config/ is created inside it
              --data DIR          path.data (default HOME/data)
              --repo DIR          path.repo, root for 'fs' snapshot repositories (default HOME/repo)
              --logs DIR          path.logs; the log file is LOGS/CLUSTER-NAME.log (default HOME/logs)
              --http-port N       http.port (default 9200)
              --transport-port P  transport.port, a port or a range (default 0 = any free port)
              --host ADDR         network.host (default 127.0.0.1)
              --cluster-name NAME cluster.name (default orchestrator-data)
              --node-name NAME    node.name (default CLUSTER-NAME-node)
              --log-level LEVEL   root log level (default INFO)
              --exit-on-stdin-eof stop the node when stdin reaches EOF (e.g. when the parent process dies)
              -E key=value        any other node setting, repeatable
            stdout gets exactly one line, 'READY http://HOST:PORT', once the node serves HTTP.
            exit codes: 0 stopped, 1 start failed, 2 bad arguments, 3 port already in use""";

        Path home = Path.of("es-home");
        Path data;
        Path repo;
        Path logs;
        String httpPort = "9200";
        String transportPort = "0";
        String host = "127.0.0.1";
        String clusterName = "orchestrator-data";
        String nodeName;
        String logLevel = "INFO";
        boolean exitOnStdinEof;
        boolean help;
        final Map<String, String> extra = new LinkedHashMap<>();

        static Options parse(String[] args) {
            Options o = new Options();
            List<String> a = new ArrayList<>(List.of(args));
            for (int i = 0; i < a.size(); i++) {
                String arg = a.get(i);
                String value = null;
                int eq = arg.indexOf('=');
                if (arg.startsWith("--") && eq > 0) {
                    value = arg.substring(eq + 1);
                    arg = arg.substring(0, eq);
                }
                switch (arg) {
                    case "-h", "--help" -> o.help = true;
                    case "--exit-on-stdin-eof" -> o.exitOnStdinEof = true;
                    case "--home", "--data", "--repo", "--logs", "--http-port", "--transport-port", "--host",
                        "--cluster-name", "--node-name", "--log-level", "-E" -> {
                        if (value == null) {
                            if (i + 1 >= a.size()) throw new IllegalArgumentException("missing value for " + arg);
                            value = a.get(++i);
                        }
                        o.set(arg, value);
                    }
                    default -> {
                        if (arg.startsWith("-E") && arg.length() > 2) {
                            o.set("-E", arg.substring(2));
                        } else {
                            throw new IllegalArgumentException("unknown argument: " + arg);
                        }
                    }
                }
            }
            o.home = o.home.toAbsolutePath().normalize();
            if (o.data == null) o.data = o.home.resolve("data");
            if (o.repo == null) o.repo = o.home.resolve("repo");
            if (o.logs == null) o.logs = o.home.resolve("logs");
            if (o.nodeName == null) o.nodeName = o.clusterName + "-node";
            return o;
        }

        private void set(String option, String value) {
            switch (option) {
                case "--home" -> home = Path.of(value);
                case "--data" -> data = Path.of(value).toAbsolutePath().normalize();
                case "--repo" -> repo = Path.of(value).toAbsolutePath().normalize();
                case "--logs" -> logs = Path.of(value).toAbsolutePath().normalize();
                case "--http-port" -> httpPort = checkPort(option, value);
                case "--transport-port" -> transportPort = checkPort(option, value);
                case "--host" -> host = value;
                case "--cluster-name" -> clusterName = value;
                case "--node-name" -> nodeName = value;
                case "--log-level" -> logLevel = value;
                case "-E" -> {
                    int eq = value.indexOf('=');
                    if (eq <= 0) throw new IllegalArgumentException("-E expects key=value, got: " + value);
                    extra.put(value.substring(0, eq), value.substring(eq + 1));
                }
                default -> throw new IllegalArgumentException("unknown argument: " + option);
            }
        }

        private static String checkPort(String option, String value) {
            if (value.matches("\\d{1,5}(-\\d{1,5})?") == false) {
                throw new IllegalArgumentException(option + " expects a port number or a range like 9300-9399, got: " + value);
            }
            return value;
        }

        Settings settings() {
            Settings.Builder s = Settings.builder()
                .put("path.home", home.toString())
                .putList("path.data", List.of(data.toString()))
                .putList("path.repo", List.of(repo.toString()))
                .put("path.logs", logs.toString())
                .put("cluster.name", clusterName)
                .put("node.name", nodeName)
                .put("network.host", host)
                .put("http.port", httpPort)
                .put("transport.port", transportPort)
                .put("discovery.type", "single-node")
                // a local dev/test node on a shared disk: never flip indices to read-only because the disk is
                // fuller than 85/90/95 %
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                // nothing here to talk to a remote cluster; keeps the node from advertising the role
                .putList("node.roles", List.of("master", "data", "ingest"));
            extra.forEach(s::put);
            return s.build();
        }
    }
}
