package org.elasticsearch.node;

import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;

import java.util.Collection;
import java.util.Collections;
import java.util.List;

/**
 * A {@link Node} whose plugins/modules are given as classes on the class path.
 * <p>
 * Lives in {@code org.elasticsearch.node} because {@code Node.prepareConstruction}, the {@code Node(NodeConstruction)}
 * constructor and {@code NodeServiceProvider} are package-private (Elastic's test-framework {@code MockNode} uses the
 * same hook). Written for ES 8.19.x; these internals change between minor versions.
 */
public class ClasspathPluginsNode extends Node {

    public ClasspathPluginsNode(Environment environment, Collection<Class<? extends Plugin>> pluginClasses) {
        super(NodeConstruction.prepareConstruction(
            environment,
            PluginsLoader.createPluginsLoader(Collections.emptySet(), Collections.emptySet(), Collections.emptyMap(), false),
            new ClasspathServiceProvider(List.copyOf(pluginClasses)),
            true
        ));
    }

    private static final class ClasspathServiceProvider extends NodeServiceProvider {
        private final List<Class<? extends Plugin>> pluginClasses;

        ClasspathServiceProvider(List<Class<? extends Plugin>> pluginClasses) {
            this.pluginClasses = pluginClasses;
        }

        @Override
        PluginsService newPluginService(Environment environment, PluginsLoader pluginsLoader) {
            return new ClasspathPluginsService(environment.settings(), environment, pluginClasses);
        }
    }
}
