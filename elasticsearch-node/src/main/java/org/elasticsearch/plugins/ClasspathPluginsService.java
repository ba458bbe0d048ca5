package org.elasticsearch.plugins;

import org.elasticsearch.Build;
import org.elasticsearch.action.admin.cluster.node.info.PluginsAndModules;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.spi.SPIClassIterator;

import java.lang.reflect.Constructor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;

/**
 * A {@link PluginsService} whose plugins are classes already on the application class path, instead of
 * bundles unpacked under {@code $ES_HOME/modules} and {@code $ES_HOME/plugins}.
 * <p>
 * Lives in {@code org.elasticsearch.plugins} because {@code PluginsService.LoadedPlugin} and
 * {@code PluginsService.loadPlugin} are package-private. Same idea as Elastic's test-framework
 * {@code MockPluginsService}; written for ES 8.19.x.
 */
public class ClasspathPluginsService extends PluginsService {

    private final List<LoadedPlugin> classpathPlugins;

    public ClasspathPluginsService(Settings settings, Environment environment, Collection<Class<? extends Plugin>> pluginClasses) {
        // an empty loader: nothing is read from the modules/ or plugins/ directories
        super(settings, environment.configDir(), PluginsLoader.createPluginsLoader(Collections.emptySet(), Collections.emptySet(), Collections.emptyMap(), false));
        List<LoadedPlugin> loaded = new ArrayList<>(pluginClasses.size());
        for (Class<? extends Plugin> pluginClass : pluginClasses) {
            Plugin instance = loadPlugin(pluginClass, settings, environment.configDir());
            PluginDescriptor descriptor = new PluginDescriptor(
                pluginClass.getName(),                               // name
                "loaded from the class path by orchestratordata.esnode",
                Build.current().version(),                           // version
                Build.current().version(),                           // elasticsearch version
                Integer.toString(Runtime.version().feature()),      // java version
                pluginClass.getName(),                               // class name
                null,                                                // module name
                List.of(),                                           // extended plugins
                false,                                               // has native controller
                false,                                               // licensed
                false,                                               // modular
                false                                                // is stable
            );
            loaded.add(new LoadedPlugin(descriptor, instance, pluginClass.getClassLoader()));
        }
        loadExtensions(loaded);
        this.classpathPlugins = List.copyOf(loaded);
    }

    @Override
    protected final List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }

    @Override
    public PluginsAndModules info() {
        // report them as modules: they are part of this node's build, not user-installed plugins
        return new PluginsAndModules(List.of(), classpathPlugins.stream().map(LoadedPlugin::descriptor).toList());
    }

    /**
     * All classpath plugins share the application class loader, so the default implementation (one
     * ServiceLoader scan per plugin) would create every provider once per plugin. Scan the class path once and
     * create one instance per provider class; a provider whose constructor takes a plugin gets the matching one.
     */
    @Override
    public <T> List<? extends T> loadServiceProviders(Class<T> service) {
        List<T> providers = new ArrayList<>();
        var classes = SPIClassIterator.get(service, ClasspathPluginsService.class.getClassLoader());
        while (classes.hasNext()) {
            Class<? extends T> providerClass = classes.next();
            Plugin owner = null;
            for (Constructor<?> ctor : providerClass.getConstructors()) {
                if (ctor.getParameterCount() == 1) {
                    for (LoadedPlugin p : classpathPlugins) {
                        if (ctor.getParameterTypes()[0].isInstance(p.instance())) owner = p.instance();
                    }
                }
            }
            if (owner != null) {
                providers.add(createExtension(providerClass, service, owner));
            } else {
                try {
                    providers.add(providerClass.getConstructor().newInstance());
                } catch (ReflectiveOperationException e) {
                    // a provider that belongs to a plugin this node does not load: skip it
                }
            }
        }
        return Collections.unmodifiableList(providers);
    }
}
