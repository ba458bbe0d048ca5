package orchestratordata.esnode;

import org.elasticsearch.ElasticsearchException;
import org.elasticsearch.action.DocWriteRequest;
import org.elasticsearch.action.DocWriteResponse;
import org.elasticsearch.action.bulk.BulkItemResponse;
import org.elasticsearch.action.bulk.BulkRequest;
import org.elasticsearch.action.bulk.BulkResponse;
import org.elasticsearch.action.delete.DeleteRequest;
import org.elasticsearch.action.index.IndexRequest;
import org.elasticsearch.action.search.ClearScrollRequest;
import org.elasticsearch.action.search.SearchRequest;
import org.elasticsearch.action.search.SearchResponse;
import org.elasticsearch.action.search.SearchScrollRequest;
import org.elasticsearch.action.support.IndicesOptions;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.common.Strings;
import org.elasticsearch.common.bytes.BytesReference;
import org.elasticsearch.common.document.DocumentField;
import org.elasticsearch.common.xcontent.XContentHelper;
import org.elasticsearch.core.TimeValue;
import org.elasticsearch.index.VersionType;
import org.elasticsearch.index.query.AbstractQueryBuilder;
import org.elasticsearch.index.query.Operator;
import org.elasticsearch.index.query.QueryBuilder;
import org.elasticsearch.index.query.QueryBuilders;
import org.elasticsearch.index.query.QueryStringQueryBuilder;
import org.elasticsearch.rest.RestChannel;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.search.SearchHit;
import org.elasticsearch.search.builder.SearchSourceBuilder;
import org.elasticsearch.search.fetch.subphase.FetchSourceContext;
import org.elasticsearch.xcontent.ToXContent;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.xcontent.XContentFactory;
import org.elasticsearch.xcontent.XContentParser;
import org.elasticsearch.xcontent.XContentParserConfiguration;
import org.elasticsearch.xcontent.XContentType;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * A synchronous stand-in for the {@code reindex} module's {@code _delete_by_query}, {@code _update_by_query} and
 * {@code _reindex}: scroll over the matching documents in {@code _doc} order and write each batch with one bulk
 * request, using the same concurrency control as the real module (delete/update-by-query write with
 * {@code if_seq_no}/{@code if_primary_term}, so a document changed meanwhile is a version conflict).
 * <p>
 * Supported: {@code query} / {@code q}, {@code max_docs}, {@code conflicts=abort|proceed}, {@code refresh},
 * {@code scroll_size}, {@code scroll}; for {@code _reindex} {@code source.index} (one or many), {@code source.query},
 * {@code source.size}, {@code source._source}, {@code dest.index}, {@code dest.op_type}, {@code dest.version_type},
 * {@code dest.routing}, {@code dest.pipeline}. The response has the real module's fields.
 * <p>
 * Refused with 400: {@code script} (no script engine: {@code lang-painless} is not on Maven Central),
 * {@code source.remote}, {@code wait_for_completion=false}. {@code slices}, {@code requests_per_second},
 * {@code timeout} and {@code wait_for_active_shards} are accepted and ignored (one slice, no throttling).
 */
final class ByQueryRunner {
    enum Kind { DELETE_BY_QUERY, UPDATE_BY_QUERY, REINDEX }

    private static final Set<String> IGNORED_PARAMS = Set.of("slices", "requests_per_second", "timeout",
        "wait_for_active_shards", "search_type", "search_timeout", "request_cache", "stats", "terminate_after");

    private final Kind kind;
    private final NodeClient client;
    private String[] sourceIndices;
    private IndicesOptions indicesOptions = IndicesOptions.strictExpandOpenAndForbidClosed();
    private QueryBuilder query = QueryBuilders.matchAllQuery();
    private String searchRouting;
    private long maxDocs = -1;
    private boolean abortOnConflict = true;
    private boolean refresh;
    private int batchSize = 1000;
    private TimeValue scrollKeepAlive = TimeValue.timeValueMinutes(5);
    private FetchSourceContext fetchSource;
    private String pipeline;
    // reindex only
    private String destIndex;
    private boolean destCreate;
    private boolean destExternalVersion;
    private String destRouting = "keep";

    private ByQueryRunner(Kind kind, NodeClient client) {
        this.kind = kind;
        this.client = client;
    }

    static ByQueryRunner fromRequest(Kind kind, RestRequest request, NodeClient client) throws IOException {
        ByQueryRunner r = new ByQueryRunner(kind, client);
        for (String p : IGNORED_PARAMS) request.param(p);
        if (request.paramAsBoolean("wait_for_completion", true) == false) {
            throw new IllegalArgumentException("wait_for_completion=false is not supported by this local node (no reindex module): run it synchronously");
        }
        String refresh = request.param("refresh");
        r.refresh = refresh != null && (refresh.isEmpty() || Boolean.parseBoolean(refresh));
        r.batchSize = request.paramAsInt("scroll_size", r.batchSize);
        r.scrollKeepAlive = request.paramAsTime("scroll", r.scrollKeepAlive);
        r.maxDocs = request.paramAsLong("max_docs", -1);
        r.setConflicts(request.param("conflicts"));

        Map<String, Object> body = Map.of();
        XContentParserConfiguration parserConfig = request.contentParserConfig();
        if (request.hasContent()) {
            try (XContentParser parser = request.contentParser()) {
                body = parser.map();
            }
        }
        if (kind == Kind.REINDEX) {
            r.parseReindexBody(body, parserConfig);
        } else {
            r.sourceIndices = Strings.splitStringByCommaToArray(request.param("index"));
            r.indicesOptions = IndicesOptions.fromRequest(request, r.indicesOptions);
            r.searchRouting = request.param("routing");
            if (kind == Kind.UPDATE_BY_QUERY) r.pipeline = request.param("pipeline");
            String q = request.param("q");
            if (q != null) {
                QueryStringQueryBuilder qs = QueryBuilders.queryStringQuery(q);
                String df = request.param("df");
                if (df != null) qs.defaultField(df);
                String analyzer = request.param("analyzer");
                if (analyzer != null) qs.analyzer(analyzer);
                String op = request.param("default_operator");
                if (op != null) qs.defaultOperator(Operator.fromString(op));
                qs.lenient(request.paramAsBoolean("lenient", null));
                r.query = qs;
            }
            for (Map.Entry<String, Object> e : body.entrySet()) {
                switch (e.getKey()) {
                    case "query" -> r.query = parseQuery(e.getValue(), parserConfig);
                    case "max_docs", "size" -> r.maxDocs = toLong(e.getKey(), e.getValue());
                    case "conflicts" -> r.setConflicts(String.valueOf(e.getValue()));
                    case "script" -> throw noScripts();
                    default -> throw new IllegalArgumentException("unsupported key [" + e.getKey() + "] in the request body of this local node's "
                        + (kind == Kind.DELETE_BY_QUERY ? "_delete_by_query" : "_update_by_query"));
                }
            }
            r.fetchSource = kind == Kind.DELETE_BY_QUERY ? FetchSourceContext.DO_NOT_FETCH_SOURCE : FetchSourceContext.FETCH_SOURCE;
        }
        if (r.batchSize <= 0) throw new IllegalArgumentException("scroll_size must be > 0");
        return r;
    }

    @SuppressWarnings("unchecked")
    private void parseReindexBody(Map<String, Object> body, XContentParserConfiguration parserConfig) throws IOException {
        for (Map.Entry<String, Object> e : body.entrySet()) {
            switch (e.getKey()) {
                case "source" -> {
                    for (Map.Entry<String, Object> s : asMap("source", e.getValue()).entrySet()) {
                        switch (s.getKey()) {
                            case "index" -> sourceIndices = toStrings("source.index", s.getValue());
                            case "query" -> query = parseQuery(s.getValue(), parserConfig);
                            case "size" -> batchSize = (int) toLong("source.size", s.getValue());
                            case "_source" -> {
                                Object v = s.getValue();
                                if (v instanceof Boolean bool) {
                                    fetchSource = FetchSourceContext.of(bool);
                                } else if (v instanceof Map<?, ?> m) {
                                    fetchSource = FetchSourceContext.of(true, toStrings("includes", ((Map<String, Object>) m).get("includes")),
                                        toStrings("excludes", ((Map<String, Object>) m).get("excludes")));
                                } else {
                                    fetchSource = FetchSourceContext.of(true, toStrings("source._source", v), Strings.EMPTY_ARRAY);
                                }
                            }
                            case "remote" -> throw new IllegalArgumentException("reindex from remote is not supported by this local node");
                            default -> throw new IllegalArgumentException("unsupported key [source." + s.getKey() + "] in this local node's _reindex");
                        }
                    }
                }
                case "dest" -> {
                    for (Map.Entry<String, Object> d : asMap("dest", e.getValue()).entrySet()) {
                        String v = String.valueOf(d.getValue());
                        switch (d.getKey()) {
                            case "index" -> destIndex = v;
                            case "op_type" -> {
                                switch (v) {
                                    case "index" -> destCreate = false;
                                    case "create" -> destCreate = true;
                                    default -> throw new IllegalArgumentException("dest.op_type must be index or create, got [" + v + "]");
                                }
                            }
                            case "version_type" -> {
                                switch (v) {
                                    case "internal" -> destExternalVersion = false;
                                    case "external", "external_gt", "external_gte" -> destExternalVersion = true;
                                    default -> throw new IllegalArgumentException("unsupported dest.version_type [" + v + "]");
                                }
                            }
                            case "routing" -> destRouting = v;
                            case "pipeline" -> pipeline = v;
                            default -> throw new IllegalArgumentException("unsupported key [dest." + d.getKey() + "] in this local node's _reindex");
                        }
                    }
                }
                case "max_docs", "size" -> maxDocs = toLong(e.getKey(), e.getValue());
                case "conflicts" -> setConflicts(String.valueOf(e.getValue()));
                case "script" -> throw noScripts();
                default -> throw new IllegalArgumentException("unsupported key [" + e.getKey() + "] in this local node's _reindex");
            }
        }
        if (sourceIndices == null || sourceIndices.length == 0) throw new IllegalArgumentException("_reindex needs source.index");
        if (destIndex == null || destIndex.isEmpty()) throw new IllegalArgumentException("_reindex needs dest.index");
        if (fetchSource == null) fetchSource = FetchSourceContext.FETCH_SOURCE;
        if (destRouting.equals("keep") == false && destRouting.equals("discard") == false && destRouting.startsWith("=") == false) {
            throw new IllegalArgumentException("dest.routing must be keep, discard or =value, got [" + destRouting + "]");
        }
    }

    private void setConflicts(String conflicts) {
        if (conflicts == null) return;
        switch (conflicts.toLowerCase(Locale.ROOT)) {
            case "abort" -> abortOnConflict = true;
            case "proceed" -> abortOnConflict = false;
            default -> throw new IllegalArgumentException("conflicts may only be \"proceed\" or \"abort\" but was [" + conflicts + "]");
        }
    }

    private static IllegalArgumentException noScripts() {
        return new IllegalArgumentException("scripts are not supported by this local node: the lang-painless module is not published to Maven Central");
    }

    @SuppressWarnings("unchecked")
    private static QueryBuilder parseQuery(Object query, XContentParserConfiguration config) throws IOException {
        XContentBuilder b = XContentFactory.jsonBuilder().map(asMap("query", query));
        try (XContentParser p = XContentType.JSON.xContent().createParser(config, BytesReference.bytes(b).streamInput())) {
            return AbstractQueryBuilder.parseTopLevelQuery(p);
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asMap(String key, Object value) {
        if (value instanceof Map<?, ?> m) return (Map<String, Object>) m;
        throw new IllegalArgumentException("[" + key + "] must be an object");
    }

    private static long toLong(String key, Object value) {
        if (value instanceof Number n) return n.longValue();
        try {
            return Long.parseLong(String.valueOf(value));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("[" + key + "] must be a number, got [" + value + "]");
        }
    }

    private static String[] toStrings(String key, Object value) {
        if (value == null) return Strings.EMPTY_ARRAY;
        if (value instanceof List<?> l) return l.stream().map(String::valueOf).toArray(String[]::new);
        if (value instanceof String s) return Strings.splitStringByCommaToArray(s);
        throw new IllegalArgumentException("[" + key + "] must be a string or a list of strings");
    }

    // ---------------------------------------------------------------------------------------------------------------

    private long total, created, updated, deleted, noops, versionConflicts, batches;
    private final List<Failure> failures = new ArrayList<>();

    private record Failure(String index, String id, Exception cause, RestStatus status) {}

    void run(RestChannel channel) throws IOException {
        long start = System.nanoTime();
        SearchSourceBuilder source = new SearchSourceBuilder()
            .query(query)
            .size(maxDocs > 0 ? (int) Math.min(batchSize, maxDocs) : batchSize)
            .sort("_doc")
            .trackTotalHits(true)
            .fetchSource(fetchSource)
            .seqNoAndPrimaryTerm(kind != Kind.REINDEX)
            .version(destExternalVersion);
        SearchRequest search = new SearchRequest(sourceIndices).source(source).scroll(scrollKeepAlive).indicesOptions(indicesOptions);
        if (searchRouting != null) search.routing(searchRouting);

        Set<String> touched = new LinkedHashSet<>();
        String scrollId = null;
        SearchResponse response = client.search(search).actionGet();
        try {
            scrollId = response.getScrollId();
            long hitsTotal = response.getHits().getTotalHits() == null ? 0 : response.getHits().getTotalHits().value;
            total = maxDocs >= 0 ? Math.min(hitsTotal, maxDocs) : hitsTotal;
            long processed = 0;
            boolean stop = false;
            while (stop == false) {
                SearchHit[] hits = response.getHits().getHits();
                if (hits.length == 0) break;
                BulkRequest bulk = new BulkRequest();
                for (SearchHit hit : hits) {
                    if (maxDocs >= 0 && processed >= maxDocs) break;
                    processed++;
                    bulk.add(toWrite(hit));
                    touched.add(kind == Kind.REINDEX ? destIndex : hit.getIndex());
                }
                if (bulk.numberOfActions() > 0) {
                    batches++;
                    stop = apply(client.bulk(bulk).actionGet());
                }
                if (maxDocs >= 0 && processed >= maxDocs) break;
                if (stop) break;
                SearchResponse next = client.searchScroll(new SearchScrollRequest(scrollId).scroll(scrollKeepAlive)).actionGet();
                response.decRef();
                response = next;
                scrollId = response.getScrollId();
            }
        } finally {
            response.decRef();
            if (scrollId != null) {
                ClearScrollRequest clear = new ClearScrollRequest();
                clear.addScrollId(scrollId);
                client.clearScroll(clear).actionGet();
            }
        }
        if (refresh && touched.isEmpty() == false) {
            client.admin().indices().prepareRefresh(touched.toArray(String[]::new)).get();
        }
        long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        channel.sendResponse(toResponse(channel, tookMillis));
    }

    private DocWriteRequest<?> toWrite(SearchHit hit) {
        String routing = null;
        DocumentField routingField = hit.field("_routing");
        if (routingField != null) routing = routingField.getValue();
        switch (kind) {
            case DELETE_BY_QUERY:
                return new DeleteRequest(hit.getIndex(), hit.getId()).routing(routing)
                    .setIfSeqNo(hit.getSeqNo()).setIfPrimaryTerm(hit.getPrimaryTerm());
            case UPDATE_BY_QUERY: {
                BytesReference src = requireSource(hit);
                IndexRequest r = new IndexRequest(hit.getIndex()).id(hit.getId()).routing(routing)
                    .source(src, XContentHelper.xContentType(src))
                    .setIfSeqNo(hit.getSeqNo()).setIfPrimaryTerm(hit.getPrimaryTerm());
                if (pipeline != null) r.setPipeline(pipeline);
                return r;
            }
            default: {
                BytesReference src = requireSource(hit);
                IndexRequest r = new IndexRequest(destIndex).id(hit.getId()).source(src, XContentHelper.xContentType(src)).create(destCreate);
                if (destRouting.equals("keep")) {
                    r.routing(routing);
                } else if (destRouting.startsWith("=")) {
                    r.routing(destRouting.substring(1));
                }
                if (destExternalVersion) r.version(hit.getVersion()).versionType(VersionType.EXTERNAL);
                if (pipeline != null) r.setPipeline(pipeline);
                return r;
            }
        }
    }

    private static BytesReference requireSource(SearchHit hit) {
        BytesReference src = hit.getSourceRef();
        if (src == null) {
            throw new IllegalArgumentException("document [" + hit.getIndex() + "][" + hit.getId() + "] has no _source");
        }
        return src;
    }

    /** @return true when the run must stop */
    private boolean apply(BulkResponse bulk) {
        boolean stop = false;
        for (BulkItemResponse item : bulk.getItems()) {
            if (item.isFailed()) {
                BulkItemResponse.Failure f = item.getFailure();
                if (f.getStatus() == RestStatus.CONFLICT) {
                    versionConflicts++;
                    if (abortOnConflict == false) continue;
                }
                failures.add(new Failure(f.getIndex(), f.getId(), f.getCause(), f.getStatus()));
                stop = true;
                continue;
            }
            DocWriteResponse r = item.getResponse();
            switch (r.getResult()) {
                case CREATED -> created++;
                case UPDATED -> updated++;
                case DELETED -> deleted++;
                default -> noops++;
            }
        }
        return stop;
    }

    private RestResponse toResponse(RestChannel channel, long tookMillis) throws IOException {
        XContentBuilder b = channel.newBuilder();
        b.startObject();
        b.field("took", tookMillis);
        b.field("timed_out", false);
        b.field("total", total);
        b.field("updated", updated);
        b.field("created", created);
        b.field("deleted", deleted);
        b.field("batches", batches);
        b.field("version_conflicts", versionConflicts);
        b.field("noops", noops);
        b.startObject("retries").field("bulk", 0).field("search", 0).endObject();
        b.field("throttled_millis", 0);
        b.field("requests_per_second", -1.0f);
        b.field("throttled_until_millis", 0);
        b.startArray("failures");
        RestStatus status = RestStatus.OK;
        for (Failure f : failures) {
            b.startObject();
            b.field("index", f.index());
            b.field("id", f.id());
            b.startObject("cause");
            ElasticsearchException.generateThrowableXContent(b, ToXContent.EMPTY_PARAMS, f.cause());
            b.endObject();
            b.field("status", f.status().getStatus());
            b.endObject();
            if (f.status().getStatus() > status.getStatus()) status = f.status();
        }
        b.endArray();
        b.endObject();
        return new RestResponse(status, b);
    }
}
