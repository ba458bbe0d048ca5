package orchestratordata.esnode;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

import java.util.Collection;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import java.util.function.Supplier;

import static org.elasticsearch.rest.RestRequest.Method.GET;
import static org.elasticsearch.rest.RestRequest.Method.HEAD;
import static org.elasticsearch.rest.RestRequest.Method.POST;

/**
 * Stand-ins for the parts of two Elasticsearch modules that are not published to Maven Central for 8.x:
 * <ul>
 *   <li>{@code rest-root}: {@code GET /} and {@code HEAD /} (cluster name/uuid, version). elasticsearch-py's
 *       {@code info()} and {@code ping()} need it.</li>
 *   <li>{@code reindex}: {@code POST /_reindex}, {@code POST /{index}/_update_by_query},
 *       {@code POST /{index}/_delete_by_query}, a synchronous subset without scripts (see {@link ByQueryRunner}).</li>
 * </ul>
 */
public class LocalCompatPlugin extends Plugin implements ActionPlugin {
    private final AtomicReference<ClusterService> clusterService = new AtomicReference<>();

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService.set(services.clusterService());
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry namedWriteableRegistry,
                                                   RestController restController, ClusterSettings clusterSettings,
                                                   IndexScopedSettings indexScopedSettings, SettingsFilter settingsFilter,
                                                   IndexNameExpressionResolver indexNameExpressionResolver,
                                                   Supplier<DiscoveryNodes> nodesInCluster, Predicate<NodeFeature> clusterSupportsFeature) {
        return List.of(
            new RootHandler(clusterService::get),
            new ByQueryHandler(ByQueryRunner.Kind.DELETE_BY_QUERY, "local_delete_by_query",
                List.of(new RestHandler.Route(POST, "/{index}/_delete_by_query"))),
            new ByQueryHandler(ByQueryRunner.Kind.UPDATE_BY_QUERY, "local_update_by_query",
                List.of(new RestHandler.Route(POST, "/{index}/_update_by_query"))),
            new ByQueryHandler(ByQueryRunner.Kind.REINDEX, "local_reindex",
                List.of(new RestHandler.Route(POST, "/_reindex")))
        );
    }

    /** {@code GET /}: the same body as the {@code rest-root} module's main action. */
    static final class RootHandler extends BaseRestHandler {
        private final Supplier<ClusterService> clusterService;

        RootHandler(Supplier<ClusterService> clusterService) {
            this.clusterService = clusterService;
        }

        @Override
        public String getName() {
            return "local_main_action";
        }

        @Override
        public List<Route> routes() {
            return List.of(new Route(GET, "/"), new Route(HEAD, "/"));
        }

        @Override
        public boolean canTripCircuitBreaker() {
            return false;
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
            return channel -> {
                if (request.method() == HEAD) {
                    channel.sendResponse(new RestResponse(RestStatus.OK, RestResponse.TEXT_CONTENT_TYPE, org.elasticsearch.common.bytes.BytesArray.EMPTY));
                    return;
                }
                ClusterService cs = clusterService.get();
                ClusterState state = cs.state();
                Build build = Build.current();
                XContentBuilder b = channel.newBuilder();
                b.startObject();
                b.field("name", cs.localNode().getName());
                b.field("cluster_name", state.getClusterName().value());
                b.field("cluster_uuid", state.metadata().clusterUUID());
                b.startObject("version")
                    .field("number", build.qualifiedVersion())
                    .field("build_flavor", build.flavor())
                    .field("build_type", build.type().displayName())
                    .field("build_hash", build.hash())
                    .field("build_date", build.date())
                    .field("build_snapshot", build.isSnapshot())
                    .field("lucene_version", IndexVersion.current().luceneVersion().toString())
                    .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                    .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                    .endObject();
                b.field("tagline", "You Know, for Search");
                b.endObject();
                channel.sendResponse(new RestResponse(RestStatus.OK, b));
            };
        }
    }

    /** The three by-query endpoints; the work runs on the generic thread pool, the REST thread never blocks. */
    static final class ByQueryHandler extends BaseRestHandler {
        private final ByQueryRunner.Kind kind;
        private final String name;
        private final List<Route> routes;

        ByQueryHandler(ByQueryRunner.Kind kind, String name, List<Route> routes) {
            this.kind = kind;
            this.name = name;
            this.routes = routes;
        }

        @Override
        public String getName() {
            return name;
        }

        @Override
        public List<Route> routes() {
            return routes;
        }

        @Override
        protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws java.io.IOException {
            ByQueryRunner runner = ByQueryRunner.fromRequest(kind, request, client);   // parses & validates now: a 400 comes back at once
            return channel -> client.threadPool().generic().execute(() -> {
                try {
                    runner.run(channel);
                } catch (Exception e) {
                    try {
                        channel.sendResponse(new RestResponse(channel, e));
                    } catch (Exception inner) {
                        e.addSuppressed(inner);
                    }
                }
            });
        }
    }
}
